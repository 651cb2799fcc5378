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
 *   stat          (-s PATH): stat(PATH): the least a change-aware directory walk does per
 *                            directory and tick (bench/containers.py: the interior cgroup dirs).
 *   dir           (-d PATH): opendir(PATH), readdir to the end, closedir: a listing such as the
 *                            process sampler's of /proc each tick (bench/processes.py).
 *   list          (-l FILE): more items, one per line as "KIND PATH" with KIND one of w r m p s d
 *                            (for the container bench, whose tens of thousands of paths do not
 *                            fit on a command line).
 *
 *   -P                       every Whole/Records file reads into its own 4 KiB buffer (grown when
 *                            full), as hvstat's FileReader does, instead of one shared buffer: with
 *                            thousands of files the buffers no longer fit in the CPU caches.
 *
 * Usage: floor -n ITERATIONS -R REPEATS [-b|-g] [-P] [-w PATH]... [-r PATH]... [-m PATH]... [-l FILE]
 * Prints one JSON object: microseconds per sample for each repeat, the syscalls per sample, and
 * with -b a per-file breakdown (each file/statvfs timed alone, ITERATIONS times, best of REPEATS),
 * or with -g a grouped one: the items grouped by kind and last path component (every
 * memory.stat, every net/dev, ...), each group timed as a whole, per sample.
 *
 * Build: gcc -O2 -o bench/out/floor bench/floor.c   (bench/node.py does this itself)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define BIG (1 << 16)

enum kind { WHOLE, RECORDS, STATVFS, POLL, STAT, DIRLIST };

struct item {
    enum kind kind;
    const char *path;
    int fd;
    char *buf; /* with -P: this file's own buffer */
    size_t cap;
};

static struct item *items;
static int nitems, capitems;
static char buf[BIG];
static long preads_per_sample; /* counted during the first sample */
static int counting;
static long vanished; /* files whose cgroup or process went away during the run */
static int private_buffers;
#define PRIVATE_INITIAL 4096

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

static void grow(struct item *it) {
    it->cap = it->cap ? 2 * it->cap : PRIVATE_INITIAL;
    it->buf = realloc(it->buf, it->cap);
    if (!it->buf) { perror("realloc"); exit(1); }
}

/* A file of a cgroup or process that went away (another user's container stopping): ENODEV
 * (kernfs), ENOENT or ESRCH (procfs). Stop reading it and count it; anything else is fatal. */
static int gone(struct item *it) {
    if (errno != ENODEV && errno != ENOENT && errno != ESRCH) return 0;
    close(it->fd);
    it->fd = -1;
    vanished++;
    return 1;
}

static void do_item(struct item *it) {
    if (it->fd < 0 && it->kind != STATVFS && it->kind != STAT && it->kind != DIRLIST) return; /* vanished */
    char *b = buf;
    size_t cap = BIG;
    if (private_buffers && (it->kind == WHOLE || it->kind == RECORDS)) {
        if (!it->buf) grow(it);
        b = it->buf;
        cap = it->cap;
    }
    switch (it->kind) {
    case WHOLE:
        for (;;) {
            ssize_t r = pread_retry(it->fd, b, cap, 0);
            if (r < 0 && gone(it)) return;
            if (r < 0) { perror(it->path); exit(1); }
            if ((size_t)r < cap || b == buf) break;
            grow(it); /* full: retry with a bigger buffer, as read.rs does */
            b = it->buf;
            cap = it->cap;
        }
        break;
    case RECORDS: {
        size_t total = 0;
        for (;;) {
            if (total == cap) {
                if (b == buf) { fprintf(stderr, "%s: larger than %d bytes\n", it->path, BIG); exit(1); }
                grow(it);
                b = it->buf;
                cap = it->cap;
            }
            ssize_t r = pread_retry(it->fd, b + total, cap - total, (off_t)total);
            if (r < 0 && gone(it)) return;
            if (r < 0) { perror(it->path); exit(1); }
            if (r == 0) break;
            total += (size_t)r;
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
    case STAT: {
        struct stat s;
        if (stat(it->path, &s) != 0 && errno != ENOENT) { perror(it->path); exit(1); }
        break;
    }
    case DIRLIST: {
        DIR *d = opendir(it->path);
        if (!d) { perror(it->path); exit(1); }
        while (readdir(d) != NULL) {
        }
        closedir(d);
        break;
    }
    }
}

static const char *kind_name(enum kind k) {
    switch (k) {
    case WHOLE: return "whole";
    case RECORDS: return "records";
    case STATVFS: return "statvfs";
    case POLL: return "poll";
    case STAT: return "stat";
    case DIRLIST: return "dir";
    }
    return "?";
}

/* Add one item; opens it (kept open) unless it is a statvfs or stat. Returns 0 on success. */
static int add_item(int opt, const char *path) {
    if (nitems == capitems) {
        capitems = capitems ? 2 * capitems : 256;
        items = realloc(items, (size_t)capitems * sizeof *items);
        if (!items) { perror("realloc"); exit(1); }
    }
    struct item *it = &items[nitems];
    it->kind = opt == 'w' ? WHOLE : opt == 'r' ? RECORDS : opt == 'p' ? POLL : opt == 's' ? STAT : opt == 'd' ? DIRLIST : STATVFS;
    it->path = path;
    it->fd = -1;
    it->buf = NULL;
    it->cap = 0;
    if (it->kind != STATVFS && it->kind != STAT && it->kind != DIRLIST) {
        it->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (it->fd < 0 && (errno == ENOENT || errno == ENODEV || errno == ESRCH)) {
            vanished++; /* gone since the list was written: leave it out */
            return 0;
        }
        if (it->fd < 0) { perror(path); return 1; }
    }
    nitems++;
    return 0;
}

/* -l FILE: "KIND PATH" per line. The strings are kept for the life of the process. */
static int add_list(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) { perror(file); return 1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n') line[--n] = 0;
        if (n < 3 || line[1] != ' ' || !strchr("wrmpsd", line[0])) {
            fprintf(stderr, "%s: bad line: %s\n", file, line);
            return 1;
        }
        char *path = strdup(line + 2);
        if (!path || add_item(line[0], path)) return 1;
    }
    free(line);
    fclose(f);
    return 0;
}

/* The group label of an item: its kind and last path component, or "net/dev" for
 * /proc/<pid>/net/dev. */
static void label_of(const struct item *it, char *out, size_t n) {
    const char *base = strrchr(it->path, '/');
    base = base ? base + 1 : it->path;
    size_t len = strlen(it->path);
    if (len >= 8 && strcmp(it->path + len - 8, "/net/dev") == 0) base = "net/dev";
    snprintf(out, n, "%s %s", kind_name(it->kind), it->kind == STAT ? "(directory)" : base);
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
    int repeats = 7, breakdown = 0, grouped = 0, opt;
    while ((opt = getopt(argc, argv, "n:R:bgPw:r:m:p:s:d:l:")) != -1) {
        switch (opt) {
        case 'P': private_buffers = 1; break;
        case 'n': iterations = atol(optarg); break;
        case 'R': repeats = atoi(optarg); break;
        case 'b': breakdown = 1; break;
        case 'g': grouped = 1; break;
        case 'w': case 'r': case 'm': case 'p': case 's': case 'd':
            if (add_item(opt, optarg)) return 1;
            break;
        case 'l':
            if (add_list(optarg)) return 1;
            break;
        default:
            fprintf(stderr, "usage: %s -n N -R R [-b|-g] [-P] [-w path]... [-r path]... [-m path]... [-p path]... [-s path]... [-l file]\n", argv[0]);
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

    long nstatvfs = 0, nstat = 0, npoll = 0;
    for (int i = 0; i < nitems; i++) {
        nstatvfs += items[i].kind == STATVFS;
        nstat += items[i].kind == STAT;
        npoll += items[i].kind == POLL;
    }
    printf("{\"iterations\": %ld, \"repeats\": %d, \"per_sample_us\": [", iterations, repeats);
    for (int r = 0; r < repeats; r++) printf("%s%.4f", r ? ", " : "", per[r]);
    printf("], \"preads_per_sample\": %ld, \"statvfs_per_sample\": %ld", preads_per_sample, nstatvfs);
    printf(", \"stat_per_sample\": %ld, \"poll_per_sample\": %ld, \"items\": %d, \"vanished\": %ld", nstat, npoll, nitems, vanished);

    if (grouped) {
        /* Label each item, then time each distinct label's items together, ITERATIONS times per
         * repeat; best and median over the repeats, as time per sample for the whole group. */
        char (*labels)[96] = calloc((size_t)nitems, sizeof *labels);
        int *done = calloc((size_t)nitems, sizeof *done);
        int *members = calloc((size_t)nitems, sizeof *members);
        double *t = calloc((size_t)repeats, sizeof *t);
        for (int i = 0; i < nitems; i++) label_of(&items[i], labels[i], sizeof labels[i]);
        printf(", \"groups\": [");
        int first = 1;
        for (int i = 0; i < nitems; i++) {
            if (done[i]) continue;
            int m = 0;
            for (int j = i; j < nitems; j++)
                if (!done[j] && strcmp(labels[i], labels[j]) == 0) { done[j] = 1; members[m++] = j; }
            for (int r = 0; r < repeats; r++) {
                double t0 = now_us();
                for (long k = 0; k < iterations; k++)
                    for (int x = 0; x < m; x++) do_item(&items[members[x]]);
                t[r] = (now_us() - t0) / (double)iterations;
            }
            qsort(t, (size_t)repeats, sizeof *t, cmp_double);
            printf("%s{\"label\": ", first ? "" : ", ");
            json_str(labels[i]);
            printf(", \"count\": %d, \"best_us\": %.4f, \"median_us\": %.4f}", m, t[0], t[repeats / 2]);
            first = 0;
        }
        printf("]");
    }

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
            printf("%s{\"kind\": \"%s\", \"path\": ", i ? ", " : "", kind_name(items[i].kind));
            json_str(items[i].path);
            printf(", \"best_us\": %.4f, \"median_us\": %.4f}", t[0], t[repeats / 2]);
        }
        printf("]");
    }
    printf("}\n");
    return 0;
}
