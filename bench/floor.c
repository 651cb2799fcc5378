/* The syscall floor of one hvstat node sample, in C.
 *
 * Does exactly the kernel work hvstat's core asks for and nothing else: every file of
 * NodeSampler.paths() is opened once and kept open; each sample re-reads each file with pread the
 * way rust/hvstat-core/src/read.rs does, then calls statvfs on the same paths the sample does.
 * Nothing is parsed.
 *
 *   Whole files   (-w PATH): one pread(fd, buf, BIG, 0).
 *   Records files (-r PATH): pread(fd, buf + total, BIG - total, total) until it returns 0
 *                            (seq_file returns about a page per call whatever the buffer size).
 *   statvfs       (-m PATH): statvfs(PATH).
 *   poll          (-p PATH): poll(fd, POLLPRI, 0) on a kept-open mountinfo: what hvstat does each
 *                            tick instead of re-reading it when the mount table did not change.
 *
 * Usage: floor -n ITERATIONS -R REPEATS [-b] [-w PATH]... [-r PATH]... [-m PATH]...
 * Prints one JSON object: microseconds per sample for each repeat, the syscalls per sample, and
 * with -b a per-file breakdown (each file/statvfs timed alone, ITERATIONS times, best of REPEATS).
 *
 * Build: gcc -O2 -o bench/out/floor bench/floor.c   (bench/node.py does this itself)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define BIG (1 << 16)
#define MAXN 4096

enum kind { WHOLE, RECORDS, STATVFS, POLL };

struct item {
    enum kind kind;
    const char *path;
    int fd;
};

static struct item items[MAXN];
static int nitems;
static char buf[BIG];
static long preads_per_sample; /* counted during the first sample */
static int counting;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static ssize_t pread_retry(int fd, char *b, size_t n, off_t off) {
    ssize_t r;
    do {
        r = pread(fd, b, n, off);
    } while (r < 0 && errno == EINTR);
    if (counting) preads_per_sample++;
    return r;
}

static void do_item(struct item *it) {
    switch (it->kind) {
    case WHOLE:
        if (pread_retry(it->fd, buf, BIG, 0) < 0) { perror(it->path); exit(1); }
        break;
    case RECORDS: {
        size_t total = 0;
        for (;;) {
            ssize_t r = pread_retry(it->fd, buf + total, BIG - total, (off_t)total);
            if (r < 0) { perror(it->path); exit(1); }
            if (r == 0) break;
            total += (size_t)r;
            if (total == BIG) { fprintf(stderr, "%s: larger than %d bytes\n", it->path, BIG); exit(1); }
        }
        break;
    }
    case POLL: {
        struct pollfd p = {.fd = it->fd, .events = POLLPRI};
        if (poll(&p, 1, 0) < 0) { perror(it->path); exit(1); }
        break;
    }
    case STATVFS: {
        struct statvfs s;
        if (statvfs(it->path, &s) != 0) { perror(it->path); exit(1); }
        break;
    }
    }
}

static void one_sample(void) {
    for (int i = 0; i < nitems; i++) do_item(&items[i]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    long iterations = 10000;
    int repeats = 7, breakdown = 0, opt;
    while ((opt = getopt(argc, argv, "n:R:bw:r:m:p:")) != -1) {
        switch (opt) {
        case 'n': iterations = atol(optarg); break;
        case 'R': repeats = atoi(optarg); break;
        case 'b': breakdown = 1; break;
        case 'w': case 'r': case 'm': case 'p':
            if (nitems == MAXN) { fprintf(stderr, "too many items\n"); return 2; }
            items[nitems].kind = opt == 'w' ? WHOLE : opt == 'r' ? RECORDS : opt == 'p' ? POLL : STATVFS;
            items[nitems].path = optarg;
            items[nitems].fd = -1;
            if (opt != 'm') {
                items[nitems].fd = open(optarg, O_RDONLY | O_CLOEXEC);
                if (items[nitems].fd < 0) { perror(optarg); return 1; }
            }
            nitems++;
            break;
        default:
            fprintf(stderr, "usage: %s -n N -R R [-b] [-w path]... [-r path]... [-m path]...\n", argv[0]);
            return 2;
        }
    }
    if (iterations < 1 || repeats < 1) return 2;

    counting = 1;
    one_sample(); /* warm-up, and count the preads of one sample */
    counting = 0;
    for (long i = 0; i < iterations / 10; i++) one_sample();

    double *per = calloc((size_t)repeats, sizeof *per);
    for (int r = 0; r < repeats; r++) {
        double t0 = now_us();
        for (long i = 0; i < iterations; i++) one_sample();
        per[r] = (now_us() - t0) / (double)iterations;
    }

    long nstatvfs = 0;
    for (int i = 0; i < nitems; i++) nstatvfs += items[i].kind == STATVFS;
    printf("{\"iterations\": %ld, \"repeats\": %d, \"per_sample_us\": [", iterations, repeats);
    for (int r = 0; r < repeats; r++) printf("%s%.4f", r ? ", " : "", per[r]);
    printf("], \"preads_per_sample\": %ld, \"statvfs_per_sample\": %ld", preads_per_sample, nstatvfs);

    if (breakdown) {
        printf(", \"breakdown\": [");
        double *t = calloc((size_t)repeats, sizeof *t);
        for (int i = 0; i < nitems; i++) {
            for (int r = 0; r < repeats; r++) {
                double t0 = now_us();
                for (long k = 0; k < iterations; k++) do_item(&items[i]);
                t[r] = (now_us() - t0) / (double)iterations;
            }
            qsort(t, (size_t)repeats, sizeof *t, cmp_double);
            printf("%s{\"kind\": \"%s\", \"path\": ", i ? ", " : "",
                   items[i].kind == WHOLE ? "whole" : items[i].kind == RECORDS ? "records" : "statvfs");
            json_str(items[i].path);
            printf(", \"best_us\": %.4f, \"median_us\": %.4f}", t[0], t[repeats / 2]);
        }
        printf("]");
    }
    printf("}\n");
    return 0;
}
