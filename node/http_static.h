/*
 * http_static.h - the web dashboard's files (web/dist, built with npm at
 * development time and committed), embedded into the daemon at build
 * time by cmake/embed_web.cmake and served at / with no token
 * (docs/api.md, "The dashboard").  Every API call the page makes carries
 * the token itself.
 */
#ifndef BS_HTTP_STATIC_H
#define BS_HTTP_STATIC_H

#include <stddef.h>

typedef struct bs_web_asset {
    const char *path; /* "/" for index.html, else "/NAME" */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
} bs_web_asset;

/* The embedded files, ended by an entry whose path is NULL (generated). */
extern const bs_web_asset bs_web_assets[];

/*
 * The asset served at path ("/", "/app.js", "/index.html" as "/"), or
 * NULL.  Static data: never freed; any thread.
 */
const bs_web_asset *bs_web_asset_find(const char *path);

#endif
