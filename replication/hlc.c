/*
 * hlc.c - hybrid logical clock (Kulkarni et al.), 48-bit ms + 16-bit counter.
 */
#include "hlc.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t
system_now_ms(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The kernel's boot ID (a UUID in text) as 16 bytes; 0 when unreadable. */
static int
boot_id(uint8_t out[BS_BOOT_ID_LEN])
{
    char buf[64];
    ssize_t n;
    size_t k = 0;
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i + 1 < n && k < BS_BOOT_ID_LEN; i++) {
        static const char hex[] = "0123456789abcdef";
        const char *a = memchr(hex, buf[i], 16), *b;
        if (a == NULL || buf[i] == '\0')
            continue; /* the dashes */
        if ((b = memchr(hex, buf[i + 1], 16)) == NULL || buf[i + 1] == '\0')
            return 0;
        out[k++] = (uint8_t)((a - hex) << 4 | (b - hex));
        i++;
    }
    return k == BS_BOOT_ID_LEN;
}

static int
system_base(void *ctx, bs_clock_base *b)
{
    struct timespec wall, boot;

    (void)ctx;
    if (!boot_id(b->boot) || clock_gettime(CLOCK_BOOTTIME, &boot) != 0 ||
        clock_gettime(CLOCK_REALTIME, &wall) != 0)
        return 0;
    b->ms = ((int64_t)wall.tv_sec - (int64_t)boot.tv_sec) * 1000 +
            ((int64_t)wall.tv_nsec - (int64_t)boot.tv_nsec) / 1000000;
    return 1;
}

const bs_clock bs_clock_system = {system_now_ms, NULL, system_base};

int
bs_clock_base_of(bs_clock c, bs_clock_base *b)
{
    return c.base != NULL && c.base(c.ctx, b);
}

void
bs_hlc_init(bs_hlc *h, bs_clock clock, uint64_t last)
{
    memset(h, 0, sizeof *h);
    h->clock = clock;
    h->last = last;
}

uint64_t
bs_hlc_wall_ms(const bs_hlc *h)
{
    return h->clock.now_ms(h->clock.ctx);
}

uint64_t
bs_hlc_now(bs_hlc *h)
{
    uint64_t wall = BS_HLC_MAKE(bs_hlc_wall_ms(h), 0);

    /* Either the wall clock moved past us, or we tick the counter.  A
     * counter overflow carries into the millisecond part, which keeps the
     * order total at the cost of running up to 1 ms ahead of the wall. */
    h->last = wall > h->last ? wall : h->last + 1;
    return h->last;
}

uint64_t
bs_hlc_stamp(bs_hlc *h, uint64_t floor)
{
    uint64_t ms = bs_hlc_wall_ms(h), last = h->last, ts;

    ms = ms > h->correction_ms ? ms - h->correction_ms : 0;
    /* A `last` this far ahead of the (corrected) wall was stamped by a
     * wall clock that was wrong, or came with one: carrying it on would
     * keep stamping every write in the future (docs/design.md, "Clocks
     * and the skew hold").  Only the floor orders the write now. */
    if (h->horizon_ms != 0 && BS_HLC_MS(last) > ms + h->horizon_ms)
        last = 0;
    ts = BS_HLC_MAKE(ms, 0);
    if (last >= ts)
        ts = last + 1;
    if (floor >= ts)
        ts = floor + 1;
    h->last = ts;
    return ts;
}

void
bs_hlc_observe(bs_hlc *h, uint64_t remote)
{
    if (remote > h->last)
        h->last = remote;
}
