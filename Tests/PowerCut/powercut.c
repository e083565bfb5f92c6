/*
 * powercut.c: an LD_PRELOAD shim for tests only. It records, for the files in
 * one directory, what a disk would still hold if the power went out now, and
 * it can make writes and syncs there fail on demand.
 *
 *   cc -shared -fPIC -O2 -o powercut.so powercut.c -ldl -lpthread
 *
 * Environment (read once, when the process starts):
 *   POWERCUT_DIR        the directory whose files are watched (directly in it:
 *                       subdirectories are not modelled). Without it the shim
 *                       does nothing. Name it without symbolic links when it
 *                       does not exist yet.
 *   POWERCUT_STATE      an empty directory where the durable view is recorded;
 *                       without it nothing is recorded (fault injection only).
 *   POWERCUT_FAIL_FILE  while a file of this name exists, write, pwrite,
 *                       writev, fdatasync and fsync on watched files and
 *                       fsync of the watched directory fail with the errno
 *                       named in it (ENOSPC, EIO, EDQUOT or EROFS; anything
 *                       else means EIO) without doing anything. Removing the
 *                       file makes them succeed again. It is looked at on
 *                       every such call.
 *
 * The durable view, in POWERCUT_STATE:
 *   <id>   the content of file number <id> as of its last successful
 *          fdatasync or fsync (absent: empty, never synced). Each file gets a
 *          number when created; the number follows the file through renames.
 *   dir    the directory's entries as of its last successful fsync, one
 *          "<id>\t<name>" a line (absent: as found when the process started).
 * Both are updated before the sync call returns, so a SIGKILL at any moment
 * leaves a view that covers everything the program was told is durable.
 * Applying the cut (Tests/lib/powercut.py, apply_cut) makes the directory
 * hold exactly the entries of `dir`, each with the content of its <id>: a
 * file whose creation no directory fsync covered disappears, a rename or
 * unlink no directory fsync covered is undone, and every byte written (or
 * truncated away) after a file's last sync is forgotten.
 *
 * The model is the strictest a POSIX file system allows, which is the right
 * one for checking a program: a real disk keeps at least what was synced and
 * often more (ext4 commits unsynced data and renames every few seconds); a
 * program that passes under this model relies on no such luck. Its
 * simplifications: the files present when the process starts count as
 * durable (apply the previous cut first and give each process a fresh
 * POWERCUT_STATE; a second process loading the shim on the same state, as a
 * wrapper script exec'ing the program would, aborts); one directory, no
 * subdirectories (their files are not watched, and the cut leaves them as
 * they are); fds made by dup, fcntl or fork are not followed, nor are writes
 * through mmap; a SIGKILL in the middle of a sync, before it returns, may
 * leave part of the newly synced bytes in <id>, as a disk may hold part of
 * unsynced writes; metadata other than names and sizes (modes, times) is not
 * modelled. The state directory is written without syncs of its own: the cut
 * is simulated, the machine keeps running.
 *
 * Every call on a watched file takes one mutex, so the view changes in the
 * order the calls happen even when several threads write.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536
#define FD_NONE 0
#define FD_DIR (-1)

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_close)(int);

static char watched[PATH_MAX];     /* canonical POWERCUT_DIR; empty: the shim is off */
static char state_dir[PATH_MAX];   /* empty: nothing recorded */
static char fail_file[PATH_MAX];   /* empty: no fault injection */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* fd -> the file's id (> 0), FD_DIR for the watched directory, FD_NONE for any
 * other fd. Written under the lock; read without it (atomically) so that calls
 * on sockets and other files cost one load. */
static int fd_ids[MAX_FDS];
static unsigned char fd_append[MAX_FDS];

/* Per id: the lowest offset changed since the last sync (-1: none), and the
 * length of its durable content. */
struct file_state { off_t dirty_from; off_t durable_length; };
static struct file_state *files;
static int file_count;             /* ids are 1 ... file_count */

/* The directory's entries now: name -> id. */
struct entry { char name[NAME_MAX + 1]; int id; };
static struct entry *entries;
static int entry_count, entry_capacity;

static void die(const char *what) {
    char message[PATH_MAX + 128];
    int n = snprintf(message, sizeof message, "powercut shim: %s: %s\n", what, strerror(errno));
    real_write(2, message, (size_t)n);
    abort();
}

static int new_file(void) {
    struct file_state *grown = realloc(files, sizeof *files * (size_t)(file_count + 2));
    if (!grown) die("realloc");
    files = grown;
    file_count += 1;
    files[file_count] = (struct file_state){ .dirty_from = -1, .durable_length = 0 };
    return file_count;
}

static struct entry *find_entry(const char *name) {
    for (int i = 0; i < entry_count; i++)
        if (strcmp(entries[i].name, name) == 0) return &entries[i];
    return NULL;
}

static void set_entry(const char *name, int id) {
    struct entry *existing = find_entry(name);
    if (existing) { existing->id = id; return; }
    if (entry_count == entry_capacity) {
        entry_capacity = entry_capacity ? entry_capacity * 2 : 16;
        entries = realloc(entries, sizeof *entries * (size_t)entry_capacity);
        if (!entries) die("realloc");
    }
    snprintf(entries[entry_count].name, sizeof entries[entry_count].name, "%s", name);
    entries[entry_count].id = id;
    entry_count += 1;
}

static void remove_entry(const char *name) {
    struct entry *existing = find_entry(name);
    if (existing) *existing = entries[--entry_count];
}

static void state_path(char *out, const char *name) {
    snprintf(out, PATH_MAX, "%s/%s", state_dir, name);
}

/* Writes the whole buffer or dies: the view must never be silently short. */
static void write_all(int fd, const char *bytes, size_t count) {
    while (count > 0) {
        ssize_t n = real_write(fd, bytes, count);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("writing the durable view");
        bytes += n;
        count -= (size_t)n;
    }
}

/* The directory's entries become durable: `dir` is replaced atomically. */
static void record_directory(void) {
    char temporary[PATH_MAX], final[PATH_MAX];
    state_path(temporary, "dir.tmp");
    state_path(final, "dir");
    int fd = real_open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(temporary);
    for (int i = 0; i < entry_count; i++) {
        char line[NAME_MAX + 32];
        int n = snprintf(line, sizeof line, "%d\t%s\n", entries[i].id, entries[i].name);
        write_all(fd, line, (size_t)n);
    }
    real_close(fd);
    if (real_rename(temporary, final) != 0) die(final);
}

/* File `id`'s content, read through `source` (an fd open for reading), becomes
 * durable. Only the bytes from the lowest one changed since the last sync are
 * copied: the log is appended to, and copying it whole at every sync would
 * cost the square of its length. */
static void record_content(int id, int source) {
    struct file_state *file = &files[id];
    struct stat status;
    if (fstat(source, &status) != 0) die("fstat");
    off_t from = file->dirty_from < 0 ? file->durable_length : file->dirty_from;
    if (from > file->durable_length) from = file->durable_length;
    if (from > status.st_size) from = status.st_size;
    char path[PATH_MAX], name[32];
    snprintf(name, sizeof name, "%d", id);
    state_path(path, name);
    int shadow = real_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (shadow < 0) die(path);
    char buffer[1 << 16];
    for (off_t offset = from; offset < status.st_size;) {
        ssize_t n = pread(source, buffer, sizeof buffer, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("pread");
        if (n == 0) break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = real_pwrite(shadow, buffer + done, (size_t)(n - done), offset + done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) die(path);
            done += w;
        }
        offset += n;
    }
    if (real_ftruncate(shadow, status.st_size) != 0) die(path);
    real_close(shadow);
    file->durable_length = status.st_size;
    file->dirty_from = -1;
}

static void mark_dirty(int id, off_t offset) {
    struct file_state *file = &files[id];
    if (file->dirty_from < 0 || offset < file->dirty_from) file->dirty_from = offset;
}

/* The watched name `path` stands for, or NULL: `out` gets the last component
 * when the file is directly in the watched directory. *is_dir is set when
 * `path` is the directory itself. */
static const char *watched_name(int dirfd, const char *path, char *out, int *is_dir) {
    *is_dir = 0;
    if (!watched[0] || !path) return NULL;
    char absolute[PATH_MAX];
    if (path[0] == '/') {
        snprintf(absolute, sizeof absolute, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return NULL;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0) return NULL;
            base[n] = 0;
        }
        snprintf(absolute, sizeof absolute, "%s/%s", base, path);
    }
    size_t length = strlen(absolute);
    while (length > 1 && absolute[length - 1] == '/') absolute[--length] = 0;
    char canonical[PATH_MAX];
    if (realpath(absolute, canonical) && strcmp(canonical, watched) == 0) {
        *is_dir = 1;
        return NULL;
    }
    char *slash = strrchr(absolute, '/');
    const char *name = slash + 1;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return NULL;
    *slash = 0;
    const char *parent = absolute[0] ? absolute : "/";
    if (!realpath(parent, canonical) || strcmp(canonical, watched) != 0) return NULL;
    snprintf(out, NAME_MAX + 1, "%s", name);
    return out;
}

/* The errno to fail with while the control file exists, else 0. */
static int injected_fault(void) {
    if (!fail_file[0]) return 0;
    int fd = real_open(fail_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[32] = {0};
    ssize_t n = read(fd, text, sizeof text - 1);
    real_close(fd);
    if (n < 0) n = 0;
    text[n] = 0;
    text[strcspn(text, " \t\r\n")] = 0;
    if (strcmp(text, "ENOSPC") == 0) return ENOSPC;
    if (strcmp(text, "EDQUOT") == 0) return EDQUOT;
    if (strcmp(text, "EROFS") == 0) return EROFS;
    return EIO;
}

static int tracked(int fd) {
    return fd >= 0 && fd < MAX_FDS ? __atomic_load_n(&fd_ids[fd], __ATOMIC_ACQUIRE) : FD_NONE;
}

static void set_fd(int fd, int id, int append) {
    if (fd >= MAX_FDS) { errno = EMFILE; die("fd beyond the shim's table"); }
    fd_append[fd] = (unsigned char)append;
    __atomic_store_n(&fd_ids[fd], id, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void powercut_init(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_truncate = dlsym(RTLD_NEXT, "truncate");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_renameat = dlsym(RTLD_NEXT, "renameat");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    real_close = dlsym(RTLD_NEXT, "close");

    const char *dir = getenv("POWERCUT_DIR");
    if (!dir || !*dir) return;
    if (!realpath(dir, watched)) {
        if (dir[0] == '/') {
            snprintf(watched, sizeof watched, "%s", dir);
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) die("getcwd");
            snprintf(watched, sizeof watched, "%s/%s", cwd, dir);
        }
        size_t length = strlen(watched);
        while (length > 1 && watched[length - 1] == '/') watched[--length] = 0;
    }
    const char *fail = getenv("POWERCUT_FAIL_FILE");
    if (fail && *fail) snprintf(fail_file, sizeof fail_file, "%s", fail);
    const char *state = getenv("POWERCUT_STATE");
    if (!state || !*state) return;
    snprintf(state_dir, sizeof state_dir, "%s", state);
    char path[PATH_MAX];
    state_path(path, "dir");
    if (access(path, F_OK) == 0) { errno = EEXIST; die("POWERCUT_STATE must be empty: give each process a fresh one"); }

    /* What is there already counts as durable. */
    DIR *stream = opendir(watched);
    if (stream) {
        struct dirent *item;
        while ((item = readdir(stream))) {
            char file[PATH_MAX];
            snprintf(file, sizeof file, "%s/%s", watched, item->d_name);
            struct stat status;
            if (item->d_type != DT_REG && (item->d_type != DT_UNKNOWN || lstat(file, &status) != 0 ||
                                           !S_ISREG(status.st_mode)))
                continue;
            int source = real_open(file, O_RDONLY | O_CLOEXEC);
            if (source < 0) die(file);
            int id = new_file();
            files[id].dirty_from = 0;
            record_content(id, source);
            real_close(source);
            set_entry(item->d_name, id);
        }
        closedir(stream);
    }
    record_directory();
}

/* Bookkeeping after a successful open of a watched name. */
static void opened(int fd, const char *name, int flags, int existed_id) {
    int id = existed_id;
    if (!id) {
        id = new_file();
        if (!(flags & O_CREAT)) {
            /* A file made behind the shim's back: take it as durable. */
            files[id].dirty_from = 0;
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            int source = real_open(link, O_RDONLY | O_CLOEXEC);
            if (source < 0) die(link);
            record_content(id, source);
            real_close(source);
        }
        set_entry(name, id);
    } else if (flags & O_TRUNC) {
        mark_dirty(id, 0);
    }
    set_fd(fd, id, (flags & O_APPEND) != 0);
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode) {
    char buffer[NAME_MAX + 1];
    int is_dir;
    const char *name = watched_name(dirfd, path, buffer, &is_dir);
    if (!name) {
        int fd = real_openat(dirfd, path, flags, mode);
        if (fd >= 0 && is_dir) {
            pthread_mutex_lock(&lock);
            set_fd(fd, FD_DIR, 0);
            pthread_mutex_unlock(&lock);
        }
        return fd;
    }
    pthread_mutex_lock(&lock);
    struct entry *existing = find_entry(name);
    int existed_id = existing ? existing->id : 0;
    int fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0 && state_dir[0]) {
        int saved = errno;
        opened(fd, name, flags, existed_id);
        errno = saved;
    } else if (fd >= 0) {
        set_fd(fd, INT_MAX, 0);  /* watched for fault injection only */
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

static mode_t mode_argument(int flags, va_list arguments) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(arguments, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    return do_open(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    return do_open(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    return do_open(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    return do_open(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode) {
    return do_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

/* Where a write on `fd` without an offset lands. */
static off_t write_offset(int fd) {
    if (fd_append[fd]) {
        struct stat status;
        return fstat(fd, &status) == 0 ? status.st_size : 0;
    }
    off_t offset = lseek(fd, 0, SEEK_CUR);
    return offset < 0 ? 0 : offset;
}

/* Runs the write `call` on watched file `id` under the lock: fails it when a
 * fault is injected, and marks the bytes from `offset` (-1: the fd's
 * position) as changed since the last sync. */
#define WATCHED_WRITE(fd, id, offset, call)                                  \
    do {                                                                     \
        pthread_mutex_lock(&lock);                                           \
        int fault = injected_fault();                                        \
        if (fault) {                                                         \
            pthread_mutex_unlock(&lock);                                     \
            errno = fault;                                                   \
            return -1;                                                       \
        }                                                                    \
        off_t at = (offset) < 0 ? write_offset(fd) : (offset);              \
        ssize_t result = (call);                                             \
        int saved = errno;                                                   \
        if (result > 0 && id != INT_MAX) mark_dirty(id, at);                 \
        pthread_mutex_unlock(&lock);                                         \
        errno = saved;                                                       \
        return result;                                                       \
    } while (0)

ssize_t write(int fd, const void *bytes, size_t count) {
    int id = tracked(fd);
    if (id <= 0) return real_write(fd, bytes, count);
    WATCHED_WRITE(fd, id, (off_t)-1, real_write(fd, bytes, count));
}

ssize_t pwrite(int fd, const void *bytes, size_t count, off_t offset) {
    int id = tracked(fd);
    if (id <= 0) return real_pwrite(fd, bytes, count, offset);
    WATCHED_WRITE(fd, id, offset, real_pwrite(fd, bytes, count, offset));
}

ssize_t pwrite64(int fd, const void *bytes, size_t count, off_t offset) {
    return pwrite(fd, bytes, count, offset);
}

ssize_t writev(int fd, const struct iovec *vector, int count) {
    int id = tracked(fd);
    if (id <= 0) return real_writev(fd, vector, count);
    WATCHED_WRITE(fd, id, (off_t)-1, real_writev(fd, vector, count));
}

/* fdatasync and fsync: the same to the model. */
static int watched_sync(int fd, int (*call)(int)) {
    int id = tracked(fd);
    if (id == FD_NONE) return call(fd);
    pthread_mutex_lock(&lock);
    int fault = injected_fault();
    if (fault) {
        pthread_mutex_unlock(&lock);
        errno = fault;
        return -1;
    }
    int result = call(fd);
    int saved = errno;
    if (result == 0 && state_dir[0]) {
        if (id == FD_DIR) {
            record_directory();
        } else if (id != INT_MAX) {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            int source = real_open(link, O_RDONLY | O_CLOEXEC);
            if (source < 0) die(link);
            record_content(id, source);
            real_close(source);
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int fdatasync(int fd) { return watched_sync(fd, real_fdatasync); }
int fsync(int fd) { return watched_sync(fd, real_fsync); }

int ftruncate(int fd, off_t length) {
    int id = tracked(fd);
    if (id <= 0 || id == INT_MAX) return real_ftruncate(fd, length);
    pthread_mutex_lock(&lock);
    int result = real_ftruncate(fd, length);
    int saved = errno;
    if (result == 0) mark_dirty(id, length);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int ftruncate64(int fd, off_t length) { return ftruncate(fd, length); }

int truncate(const char *path, off_t length) {
    char buffer[NAME_MAX + 1];
    int is_dir;
    const char *name = watched_name(AT_FDCWD, path, buffer, &is_dir);
    if (!name || !state_dir[0]) return real_truncate(path, length);
    pthread_mutex_lock(&lock);
    int result = real_truncate(path, length);
    int saved = errno;
    struct entry *existing = find_entry(name);
    if (result == 0 && existing) mark_dirty(existing->id, length);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int truncate64(const char *path, off_t length) { return truncate(path, length); }

static int do_rename(int from_dirfd, const char *from, int to_dirfd, const char *to) {
    char from_buffer[NAME_MAX + 1], to_buffer[NAME_MAX + 1];
    int from_is_dir, to_is_dir;
    const char *from_name = watched_name(from_dirfd, from, from_buffer, &from_is_dir);
    const char *to_name = watched_name(to_dirfd, to, to_buffer, &to_is_dir);
    if ((!from_name && !to_name) || !state_dir[0]) return real_renameat(from_dirfd, from, to_dirfd, to);
    pthread_mutex_lock(&lock);
    int result = real_renameat(from_dirfd, from, to_dirfd, to);
    int saved = errno;
    if (result == 0) {
        struct entry *source = from_name ? find_entry(from_name) : NULL;
        int id = source ? source->id : 0;
        if (from_name) remove_entry(from_name);
        if (to_name) {
            if (!id) {
                /* Moved in from elsewhere: its content as it is counts as synced. */
                id = new_file();
                files[id].dirty_from = 0;
                int fd = real_openat(to_dirfd, to, O_RDONLY | O_CLOEXEC);
                if (fd < 0) die(to);
                record_content(id, fd);
                real_close(fd);
            }
            set_entry(to_name, id);
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int rename(const char *from, const char *to) { return do_rename(AT_FDCWD, from, AT_FDCWD, to); }

int renameat(int from_dirfd, const char *from, int to_dirfd, const char *to) {
    return do_rename(from_dirfd, from, to_dirfd, to);
}

static int do_unlink(int dirfd, const char *path, int flags) {
    char buffer[NAME_MAX + 1];
    int is_dir;
    const char *name = watched_name(dirfd, path, buffer, &is_dir);
    if (!name || !state_dir[0] || (flags & AT_REMOVEDIR)) return real_unlinkat(dirfd, path, flags);
    pthread_mutex_lock(&lock);
    int result = real_unlinkat(dirfd, path, flags);
    int saved = errno;
    if (result == 0) remove_entry(name);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return result;
}

int unlink(const char *path) { return do_unlink(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return do_unlink(dirfd, path, flags); }

int close(int fd) {
    if (tracked(fd) != FD_NONE) {
        pthread_mutex_lock(&lock);
        set_fd(fd, FD_NONE, 0);
        int result = real_close(fd);
        pthread_mutex_unlock(&lock);
        return result;
    }
    return real_close(fd);
}
