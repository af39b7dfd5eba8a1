/*
 * http_static.c - finding the dashboard's embedded files by path (the
 * files themselves are in the generated web_assets.c).
 */
#include "http_static.h"

#include <string.h>

const bs_web_asset *
bs_web_asset_find(const char *path)
{
    if (strcmp(path, "/index.html") == 0)
        path = "/";
    for (const bs_web_asset *a = bs_web_assets; a->path != NULL; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}
