/*
 * peers.c - the peer table (PeerState records, storage.proto).
 */
#include "peers.h"

#include <arpa/inet.h>
#include <string.h>

#include "storage.pb-c.h"

/*
 * The host of a well-formed tcp endpoint ("tcp://HOST:PORT", HOST of
 * printable ASCII without blanks, PORT 1-65535) at *host, n bytes; or
 * "ipc://PATH" (*n = 0).  0 when s is neither.
 */
static int
endpoint_parse(const char *s, const char **host, size_t *n)
{
    const char *colon;
    char *end;
    long port;

    *host = NULL;
    *n = 0;
    if (strlen(s) > BS_ENDPOINT_MAX)
        return 0;
    if (strncmp(s, "ipc://", 6) == 0)
        return s[6] != '\0';
    if (strncmp(s, "tcp://", 6) != 0 || (colon = strrchr(s + 6, ':')) == NULL ||
        colon == s + 6)
        return 0;
    for (const char *p = s + 6; p < colon; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    if (colon[1] < '0' || colon[1] > '9')
        return 0;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port >= 65536)
        return 0;
    *host = s + 6;
    *n = (size_t)(colon - *host);
    return 1;
}

int
bs_endpoint_listenable(const char *s)
{
    const char *host;
    size_t n;

    return endpoint_parse(s, &host, &n);
}

/* A wildcard host: any local address, which names no node to dial. */
static int
wildcard(const char *host, size_t n)
{
    char ip[64];
    unsigned char a[16], zero[16] = {0};
    struct in_addr v4;

    if (n == 1 && host[0] == '*')
        return 1;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 1 && host[0] == '*')
        return 1;
    if (n == 0 || n >= sizeof ip)
        return 0;
    memcpy(ip, host, n);
    ip[n] = '\0';
    /* inet_aton, unlike inet_pton, reads the short forms "0" and "0.0"
     * that the resolver maps to 0.0.0.0 too. */
    return (inet_aton(ip, &v4) != 0 && v4.s_addr == 0) ||
           (inet_pton(AF_INET6, ip, a) == 1 && memcmp(a, zero, 16) == 0);
}

int
bs_endpoint_dialable(const char *s)
{
    const char *host;
    size_t n;

    return endpoint_parse(s, &host, &n) && (host == NULL || !wildcard(host, n));
}

const char *
bs_endpoint_folder(const char *s)
{
    if (strlen(s) > BS_ENDPOINT_MAX || strncmp(s, "dir:/", 5) != 0)
        return NULL;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return NULL;
    return s + 4;
}

/* ---- encoding (storage.proto, PeerState) ---- */

static ProtobufCBinaryData
bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

static bs_err
decode(bs_slice v, bs_peer *p)
{
    Bs__PeerState *m = bs__peer_state__unpack(NULL, v.n, v.p);
    bs_err rv = BS_ESTORE;

    memset(p, 0, sizeof *p);
    if (m == NULL)
        return BS_ESTORE;
    if (m->pk.len != BS_PK_LEN ||
        (m->peer_incarnation.len != 0 &&
         m->peer_incarnation.len != BS_INC_LEN) ||
        (m->clock_boot.len != 0 && m->clock_boot.len != 16) ||
        strlen(m->name) > BS_NODE_NAME_MAX)
        goto out;
    snprintf(p->name, sizeof p->name, "%s", m->name);
    snprintf(p->endpoint, sizeof p->endpoint, "%s", m->endpoint);
    snprintf(p->schedule, sizeof p->schedule, "%s", m->schedule);
    snprintf(p->window, sizeof p->window, "%s", m->window);
    snprintf(p->last_error, sizeof p->last_error, "%s", m->last_error);
    memcpy(p->pk, m->pk.data, BS_PK_LEN);
    if ((p->has_inc = m->peer_incarnation.len == BS_INC_LEN))
        memcpy(p->peer_inc, m->peer_incarnation.data, BS_INC_LEN);
    p->sent_no = m->sent_no;
    p->recv_no = m->recv_no;
    p->acked_no = m->acked_no;
    p->last_ok_ms = m->last_ok_ms;
    p->last_err_ms = m->last_error_ms;
    p->created_ms = m->created_ms;
    p->sent_changes = m->sent_changes;
    p->recv_changes = m->received_changes;
    p->clock_lo_ms = m->clock_lo_ms;
    p->clock_hi_ms = m->clock_hi_ms;
    p->clock_at_ms = m->clock_at_ms;
    p->clock_base_ms = m->clock_base_ms;
    if ((p->has_boot = m->clock_boot.len == 16))
        memcpy(p->clock_boot, m->clock_boot.data, 16);
    p->refused_sets = m->refused_sets;
    p->held_there = m->held_there;
    snprintf(p->refused_reason, sizeof p->refused_reason, "%s",
             m->refused_reason);
    if (m->hub_pin > BS_PIN_NAMED)
        goto out;
    p->hub_pin = (int)m->hub_pin;
    if ((p->acked = calloc(m->n_acked + 1, sizeof *p->acked)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m->n_acked; i++) {
        const Bs__StreamPos *sp = m->acked[i];
        if (sp->origin.len != BS_PK_LEN || sp->incarnation.len != BS_INC_LEN) {
            bs_peer_fini(p);
            goto out;
        }
        memcpy(p->acked[i].origin, sp->origin.data, BS_PK_LEN);
        memcpy(p->acked[i].inc, sp->incarnation.data, BS_INC_LEN);
        p->acked[i].seq = sp->seq;
    }
    p->nacked = m->n_acked;
    rv = BS_OK;
out:
    bs__peer_state__free_unpacked(m, NULL);
    return rv;
}

bs_err
bs_peer_get(bs_txn *t, const char *name, bs_peer *p)
{
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_PEERS, bs_str(name), &v);

    if (rv != BS_OK)
        return rv;
    return decode(v, p);
}

bs_err
bs_peer_encode(const bs_peer *p, uint8_t **out, size_t *n)
{
    Bs__PeerState m = BS__PEER_STATE__INIT;
    Bs__StreamPos *pos = calloc(p->nacked + 1, sizeof *pos);
    Bs__StreamPos **ptr = calloc(p->nacked + 1, sizeof *ptr);
    bs_err rv = BS_OK;

    if (pos == NULL || ptr == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < p->nacked; i++) {
        bs__stream_pos__init(&pos[i]);
        pos[i].origin = bin(p->acked[i].origin, BS_PK_LEN);
        pos[i].incarnation = bin(p->acked[i].inc, BS_INC_LEN);
        pos[i].seq = p->acked[i].seq;
        ptr[i] = &pos[i];
    }
    m.name = (char *)p->name;
    m.endpoint = (char *)p->endpoint;
    m.pk = bin(p->pk, BS_PK_LEN);
    m.schedule = (char *)p->schedule;
    m.window = (char *)p->window;
    m.n_acked = p->nacked;
    m.acked = ptr;
    m.sent_no = p->sent_no;
    m.recv_no = p->recv_no;
    m.acked_no = p->acked_no;
    if (p->has_inc)
        m.peer_incarnation = bin(p->peer_inc, BS_INC_LEN);
    m.last_ok_ms = p->last_ok_ms;
    m.last_error_ms = p->last_err_ms;
    m.created_ms = p->created_ms;
    m.last_error = (char *)p->last_error;
    m.sent_changes = p->sent_changes;
    m.received_changes = p->recv_changes;
    m.clock_lo_ms = p->clock_lo_ms;
    m.clock_hi_ms = p->clock_hi_ms;
    m.clock_at_ms = p->clock_at_ms;
    m.clock_base_ms = p->clock_base_ms;
    if (p->has_boot)
        m.clock_boot = bin(p->clock_boot, 16);
    m.refused_sets = p->refused_sets;
    m.held_there = p->held_there;
    m.refused_reason = (char *)p->refused_reason;
    m.hub_pin = (uint32_t)p->hub_pin;
    *n = bs__peer_state__get_packed_size(&m);
    if ((*out = malloc(*n + 1)) == NULL)
        rv = BS_ENOMEM;
    else
        bs__peer_state__pack(&m, *out);
out:
    free(ptr);
    free(pos);
    return rv;
}

bs_err
bs_peer_put(bs_txn *t, const bs_peer *p)
{
    uint8_t *buf;
    size_t n;
    bs_err rv;

    if ((rv = bs_peer_encode(p, &buf, &n)) != BS_OK)
        return rv;
    rv = bs_txn_put(t, BS_DB_PEERS, bs_str(p->name), bs_mem(buf, n), 0, NULL);
    free(buf);
    return rv;
}

bs_err
bs_peer_del(bs_txn *t, const char *name)
{
    return bs_txn_del(t, BS_DB_PEERS, bs_str(name));
}

/* v without its field-6 entries (the vector) into buf (v.n bytes). */
static bs_slice
without_vector(bs_slice v, uint8_t *buf)
{
    const uint8_t *p = v.p, *end = v.p + v.n;
    uint8_t *o = buf;

    while (p < end) {
        const uint8_t *start = p;
        uint64_t tag, len;

        if (!bs_varint_get(&p, end, &tag) || ((tag & 7) != 0 && (tag & 7) != 2))
            return v; /* (the full decode refuses it) */
        if (!bs_varint_get(&p, end, &len) ||
            ((tag & 7) == 2 && len > (uint64_t)(end - p)))
            return v;
        if ((tag & 7) == 2)
            p += len;
        if (tag >> 3 != 6) {
            memcpy(o, start, (size_t)(p - start));
            o += p - start;
        }
    }
    return (bs_slice){buf, (size_t)(o - buf)};
}

static bs_err list_peers(bs_txn *t, int bare, bs_peer **out, size_t *n);

bs_err
bs_peer_list(bs_txn *t, bs_peer **out, size_t *n)
{
    return list_peers(t, 0, out, n);
}

bs_err
bs_peer_list_bare(bs_txn *t, bs_peer **out, size_t *n)
{
    return list_peers(t, 1, out, n);
}

static bs_err
list_peers(bs_txn *t, int bare, bs_peer **out, size_t *n)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_peer *list = NULL;
    size_t cnt = 0;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_PEERS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_peer *nl = realloc(list, (cnt + 1) * sizeof *nl);
        if (nl == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        list = nl;
        if (bare) {
            uint8_t *buf = malloc(v.n + 1);
            if (buf == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            rv = decode(without_vector(v, buf), &list[cnt]);
            free(buf);
        } else {
            rv = decode(v, &list[cnt]);
        }
        if (rv != BS_OK)
            break;
        cnt++;
    }
    bs_cursor_close(c);
    if (rv != BS_ENOTFOUND) {
        bs_peer_list_free(list, cnt);
        return rv;
    }
    *out = list;
    *n = cnt;
    return BS_OK;
}

/* The first peer (in name order) for which match(p, arg), into *p. */
static bs_err
find(bs_txn *t, int (*match)(const bs_peer *, const void *), const void *arg,
     bs_peer *p)
{
    bs_peer *list;
    size_t n;
    bs_err rv = bs_peer_list(t, &list, &n);

    if (rv != BS_OK)
        return rv;
    rv = BS_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        if (rv == BS_ENOTFOUND && match(&list[i], arg)) {
            *p = list[i];
            rv = BS_OK;
        } else {
            bs_peer_fini(&list[i]);
        }
    }
    free(list);
    return rv;
}

static int
has_pk(const bs_peer *p, const void *pk)
{
    return memcmp(p->pk, pk, BS_PK_LEN) == 0;
}

static int
is_pinned(const bs_peer *p, const void *unused)
{
    (void)unused;
    return p->hub_pin != BS_PIN_NONE;
}

/* 1 when the PeerState bytes v name pk (field 3, read in place: the
 * fields before it are two strings).  0 when they do not, or do not read
 * (the full decode judges those). */
static int
names_pk(bs_slice v, const uint8_t *pk)
{
    const uint8_t *p = v.p, *end = v.p + v.n;
    uint64_t tag, len;

    while (bs_varint_get(&p, end, &tag) && (tag & 7) == 2 && tag >> 3 <= 3 &&
           bs_varint_get(&p, end, &len) && len <= (uint64_t)(end - p)) {
        if (tag >> 3 == 3)
            return len == BS_PK_LEN && memcmp(p, pk, BS_PK_LEN) == 0;
        p += len;
    }
    return 0;
}

bs_err
bs_peer_find_pk(bs_txn *t, const uint8_t pk[BS_PK_LEN], bs_peer *p)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    /* Each peer's key read in place, and only the match decoded: a hub of
     * a thousand branches decoded every peer, with its vector of a
     * thousand entries, at the end of every session. */
    if ((rv = bs_cursor_open(t, BS_DB_PEERS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        if (!names_pk(v, pk))
            continue;
        rv = decode(v, p);
        if (rv != BS_OK || has_pk(p, pk))
            break;
        bs_peer_fini(p);
    }
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_peer_pinned(bs_txn *t, bs_peer *p)
{
    return find(t, is_pinned, NULL, p);
}

void
bs_peer_fini(bs_peer *p)
{
    free(p->acked);
    p->acked = NULL;
    p->nacked = 0;
}

void
bs_peer_list_free(bs_peer *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bs_peer_fini(&v[i]);
    free(v);
}
