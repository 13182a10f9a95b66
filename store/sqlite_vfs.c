/* store SQLite VFS shim: gathers the writes SQLite makes to write-ahead logs.
 *
 * SQLite writes each WAL frame as two writes, the 24-byte frame header and then the page,
 * so a commit of n pages cost 2n pwrite(2) calls; at the publish ceiling that was 60,000
 * a second and nearly all of the commit thread's kernel time (docs/streams.md, "The WAL's
 * writes are gathered"). This shim, registered once under STORE_VFS_NAME over the default
 * ("unix") VFS and named by the store's connections, gathers the contiguous writes to a
 * file opened with SQLITE_OPEN_WAL in a 124 KB buffer of the file handle and hands them to
 * the real file in few writes (one per 30 frames). Durability is unchanged: nothing SQLite
 * has published may be missing from the kernel, so
 *  - a frame header whose bytes 4..7 (the database size after commit, big-endian) are
 *    nonzero opens a commit: the write that follows it (the commit frame's page) is
 *    flushed before that xWrite returns, and until the next transaction's first frame (a
 *    non-commit header written at the end of what this handle wrote, or the WAL header at
 *    offset 0) every write is flushed before it returns: the checksums SQLite rewrites in
 *    place after the commit frame, the copies of the commit frame it pads a sector with
 *    under synchronous=FULL and the pieces of a write it splits around its sync point;
 *  - a write anywhere but the buffer's end (a frame of the current transaction rewritten
 *    in place) flushes the buffer first and starts it again at that offset;
 *  - every other method of a WAL file (xRead, xSync, xTruncate, xFileSize, locks, file
 *    controls, xShm*, xFetch, xClose) flushes first, but the three that cannot report a
 *    failure (xSectorSize, xDeviceCharacteristics, xShmBarrier);
 *  - a failed flush is returned by the call that triggered it (SQLite then fails that
 *    transaction, whose frames were never committed) and the buffer is discarded; so is
 *    what a rolled-back transaction left in it (store__vfs_rolled_back).
 * Frame headers are told apart from other writes by their length and their place: 24
 * bytes at a frame boundary of the page size read from the WAL header. Their salts tell
 * when another handle of the file (another connection) has started the log over, which
 * makes what this handle wrote before irrelevant (headers that SQLite will rewrite carry
 * zeros there, and are not compared). Every other file is the real file itself, with the
 * real methods: the shim adds nothing to it.
 *
 * Owns the registered sqlite3_vfs (the only state outside the files) and, per WAL file,
 * the buffer; borrows the default VFS. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define VFS_WAL_HDR 32   /* bytes: the WAL file's header */
#define VFS_FRAME_HDR 24 /* bytes: before each page */
/* bytes: the buffer, flushed when full. One write of the unix VFS takes at most 128 KB:
 * it cuts the length to 17 bits and reports the rest as a full disk. A larger buffer
 * would only be written in as many pieces and cost memory. */
#define VFS_BUF_BYTES (31 * 4096)

/* The registered VFS. pAppData is the default VFS (borrowed); counts are atomic because
 * every connection of the process shares them. Invariant: registered once `once` has run
 * and sqlite3_vfs_register accepted base. */
typedef struct vfs_state {
  sqlite3_vfs base;
  pthread_once_t once;
  bool registered;
  _Atomic uint64_t wal_writes;     /* xWrite calls SQLite made to WAL files */
  _Atomic uint64_t wal_pwrites;    /* writes the shim made to the real WAL files */
  _Atomic uint64_t wal_flush_errs; /* flushes that failed */
} vfs_state_t;

/* A WAL file: base (with our methods) first, the real file at real_off bytes from it.
 * Invariant: buf[0..len) are the bytes SQLite wrote at [buf_off, buf_off + len) and the
 * real file does not have yet; len is 0 outside a transaction's writes. */
typedef struct vfs_wal {
  sqlite3_file base;
  sqlite3_file *real;                /* borrowed: storage inside this allocation */
  const sqlite3_io_methods *methods; /* borrowed, static: the real file's */
  vfs_state_t *vfs;                  /* borrowed */
  uint8_t *buf;                      /* owned: VFS_BUF_BYTES, NULL until the first write */
  size_t len;                        /* bytes */
  sqlite3_int64 buf_off;             /* bytes: where buf[0] goes */
  sqlite3_int64 written_end;         /* bytes: the end of this handle's writes since the
                                        log last started over (new frames go there) */
  uint32_t page;                     /* bytes: the page size, 0 until known */
  uint8_t salt[8];                   /* the log's salts, as in this handle's last header */
  bool committing;                   /* a commit header was written: flush each write */
} vfs_wal_t;

/* Where the real file starts inside ours (aligned for any of its members). */
static size_t vfs_real_off(void) {
  size_t a = _Alignof(max_align_t);
  return (sizeof(vfs_wal_t) + a - 1) / a * a;
}

static uint32_t vfs_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The page size field of a WAL header (1 stands for 65536). */
static uint32_t vfs_hdr_page(const uint8_t *hdr) {
  uint32_t p = vfs_be32(hdr + 8);
  return p == 1 ? 65536 : p;
}

/* Hands the buffer to the real file (which loops over short writes) in one write and
 * empties it, also when that fails: those frames belong to a transaction SQLite must now
 * roll back as a whole. Any failure is reported as SQLITE_IOERR_WRITE, because SQLite
 * answers that with a rollback of the whole transaction. A SQLITE_FULL (a full disk) from
 * a flush that an xRead triggered would only undo the statement that read, and the
 * transaction could then commit with frames the wal-index lists but the file never
 * got. */
static int vfs_flush(vfs_wal_t *w) {
  if (w->len == 0) return SQLITE_OK;
  int rc = w->methods->xWrite(w->real, w->buf, (int)w->len, w->buf_off);
  atomic_fetch_add(&w->vfs->wal_pwrites, 1);
  w->buf_off += (sqlite3_int64)w->len;
  w->len = 0;
  if (rc == SQLITE_OK) return SQLITE_OK;
  atomic_fetch_add(&w->vfs->wal_flush_errs, 1);
  return SQLITE_IOERR_WRITE;
}

/* The page size from the WAL header already in the file (the log was started by another
 * handle or an earlier process). Leaves page 0 when there is none yet. */
static int vfs_learn_page(vfs_wal_t *w) {
  uint8_t hdr[VFS_WAL_HDR];
  int rc = w->methods->xRead(w->real, hdr, sizeof hdr, 0);
  if (rc == SQLITE_IOERR_SHORT_READ) return SQLITE_OK;
  if (rc == SQLITE_OK) w->page = vfs_hdr_page(hdr);
  return rc;
}

/* Whether a write of n bytes at off is a frame header. */
static bool vfs_is_frame_hdr(const vfs_wal_t *w, int n, sqlite3_int64 off) {
  if (n != VFS_FRAME_HDR || w->page == 0 || off < VFS_WAL_HDR) return false;
  return (off - VFS_WAL_HDR) % ((sqlite3_int64)w->page + VFS_FRAME_HDR) == 0;
}

/* Appends p[0..n) to the buffer, which ends at off (or is empty), flushing it each time
 * it is full. */
static int vfs_append(vfs_wal_t *w, const uint8_t *p, size_t n, sqlite3_int64 off) {
  if (!w->buf) w->buf = xmalloc(VFS_BUF_BYTES);
  if (w->len == 0) w->buf_off = off;
  while (n > 0) {
    size_t k = VFS_BUF_BYTES - w->len < n ? VFS_BUF_BYTES - w->len : n;
    memcpy(w->buf + w->len, p, k);
    w->len += k;
    p += k;
    n -= k;
    if (w->len == VFS_BUF_BYTES) {
      int rc = vfs_flush(w);
      if (rc != SQLITE_OK) return rc;
    }
  }
  return SQLITE_OK;
}

static int vfs_wal_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  atomic_fetch_add(&w->vfs->wal_writes, 1);
  int rc = SQLITE_OK;
  if (w->len > 0 && off != w->buf_off + (sqlite3_int64)w->len) rc = vfs_flush(w);
  if (rc == SQLITE_OK && w->page == 0 && n == VFS_FRAME_HDR && off > 0) {
    rc = vfs_flush(w);
    if (rc == SQLITE_OK) rc = vfs_learn_page(w);
  }
  if (rc != SQLITE_OK) return rc;
  bool flush_after = w->committing;
  if (off == 0 && n >= VFS_WAL_HDR) {
    /* The log starts over: a new transaction's first write. */
    w->page = vfs_hdr_page(p);
    memcpy(w->salt, (const uint8_t *)p + 16, sizeof w->salt);
    w->written_end = 0;
    w->committing = false;
    flush_after = false;
  } else if (vfs_is_frame_hdr(w, n, off)) {
    const uint8_t *h = p;
    static const uint8_t zero[16];
    /* Headers SQLite will rewrite (after a frame was rewritten in place) carry zeros
     * instead of the salts and checksums. */
    bool salted = memcmp(h + 8, zero, sizeof zero) != 0;
    if (salted && memcmp(w->salt, h + 8, sizeof w->salt) != 0) {
      /* Another handle started the log over: what this one wrote before is gone, and
       * this is a new transaction's first frame. */
      memcpy(w->salt, h + 8, sizeof w->salt);
      w->written_end = 0;
      w->committing = false;
      flush_after = false;
    }
    bool commit = vfs_be32(h + 4) != 0;
    bool new_frame = off >= w->written_end;
    if (new_frame && !commit) {
      w->committing = false; /* the next transaction's first frame */
      flush_after = false;
    } else if (commit) {
      w->committing = true;
      flush_after = !new_frame; /* a new commit frame's page comes next */
    }
  }
  /* Until the page size is known no frame header is recognized, so no commit either:
   * then every write goes out before it returns. */
  if (w->page == 0) flush_after = true;
  rc = vfs_append(w, p, (size_t)n, off);
  if (off + n > w->written_end) w->written_end = off + n;
  if (rc == SQLITE_OK && flush_after) rc = vfs_flush(w);
  return rc;
}

/* The methods that only flush first, then call the real one. */
#define VFS_FLUSHED(f, call)          \
  do {                                \
    vfs_wal_t *w_ = (vfs_wal_t *)(f); \
    int rc_ = vfs_flush(w_);          \
    if (rc_ != SQLITE_OK) return rc_; \
    return w_->methods->call;         \
  } while (0)

static int vfs_wal_close(sqlite3_file *f) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  int rc = vfs_flush(w);
  int rc2 = w->methods->xClose(w->real);
  free(w->buf);
  w->buf = NULL;
  return rc != SQLITE_OK ? rc : rc2;
}

static int vfs_wal_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
  VFS_FLUSHED(f, xRead(w_->real, p, n, off));
}

static int vfs_wal_truncate(sqlite3_file *f, sqlite3_int64 size) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  if (w->written_end > size) w->written_end = size;
  VFS_FLUSHED(f, xTruncate(w_->real, size));
}

static int vfs_wal_sync(sqlite3_file *f, int flags) {
  VFS_FLUSHED(f, xSync(w_->real, flags));
}

static int vfs_wal_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  VFS_FLUSHED(f, xFileSize(w_->real, size));
}

static int vfs_wal_lock(sqlite3_file *f, int level) {
  VFS_FLUSHED(f, xLock(w_->real, level));
}

static int vfs_wal_unlock(sqlite3_file *f, int level) {
  VFS_FLUSHED(f, xUnlock(w_->real, level));
}

static int vfs_wal_check_reserved(sqlite3_file *f, int *out) {
  VFS_FLUSHED(f, xCheckReservedLock(w_->real, out));
}

static int vfs_wal_file_control(sqlite3_file *f, int op, void *arg) {
  VFS_FLUSHED(f, xFileControl(w_->real, op, arg));
}

/* These three cannot report a failure, so they leave the buffer alone (SQLite asks for
 * the sector size between the writes of a commit it pads; it maps the shared memory of
 * the database file, never of the log). */
static int vfs_wal_sector_size(sqlite3_file *f) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  return w->methods->xSectorSize(w->real);
}

static int vfs_wal_device(sqlite3_file *f) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  return w->methods->xDeviceCharacteristics(w->real);
}

static int vfs_wal_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp) {
  VFS_FLUSHED(f, xShmMap(w_->real, pg, pgsz, extend, pp));
}

static int vfs_wal_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
  VFS_FLUSHED(f, xShmLock(w_->real, offset, n, flags));
}

static void vfs_wal_shm_barrier(sqlite3_file *f) {
  vfs_wal_t *w = (vfs_wal_t *)f;
  w->methods->xShmBarrier(w->real);
}

static int vfs_wal_shm_unmap(sqlite3_file *f, int del) {
  VFS_FLUSHED(f, xShmUnmap(w_->real, del));
}

static int vfs_wal_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
  VFS_FLUSHED(f, xFetch(w_->real, off, n, pp));
}

static int vfs_wal_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  VFS_FLUSHED(f, xUnfetch(w_->real, off, p));
}

/* One table per version a real file may have, so that SQLite never calls a method the
 * real file lacks. */
#define VFS_WAL_METHODS_V1                                                                        \
  .xClose = vfs_wal_close, .xRead = vfs_wal_read, .xWrite = vfs_wal_write,                        \
  .xTruncate = vfs_wal_truncate, .xSync = vfs_wal_sync, .xFileSize = vfs_wal_file_size,           \
  .xLock = vfs_wal_lock, .xUnlock = vfs_wal_unlock, .xCheckReservedLock = vfs_wal_check_reserved, \
  .xFileControl = vfs_wal_file_control, .xSectorSize = vfs_wal_sector_size,                       \
  .xDeviceCharacteristics = vfs_wal_device
#define VFS_WAL_METHODS_V2                                                      \
  VFS_WAL_METHODS_V1, .xShmMap = vfs_wal_shm_map, .xShmLock = vfs_wal_shm_lock, \
                      .xShmBarrier = vfs_wal_shm_barrier, .xShmUnmap = vfs_wal_shm_unmap

static const sqlite3_io_methods vfs_wal_methods[3] = {
    {.iVersion = 1, VFS_WAL_METHODS_V1},
    {.iVersion = 2, VFS_WAL_METHODS_V2},
    {.iVersion = 3, VFS_WAL_METHODS_V2, .xFetch = vfs_wal_fetch, .xUnfetch = vfs_wal_unfetch},
};

/* ---- the VFS ---- */

static sqlite3_vfs *vfs_real(sqlite3_vfs *vfs) {
  return vfs->pAppData;
}

/* A WAL file gets our methods around the real file; any other file is the real file,
 * opened in place. */
static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                    int *out_flags) {
  sqlite3_vfs *real = vfs_real(vfs);
  if (!(flags & SQLITE_OPEN_WAL)) return real->xOpen(real, name, f, flags, out_flags);
  vfs_wal_t *w = (vfs_wal_t *)f;
  memset(w, 0, sizeof *w);
  w->real = (sqlite3_file *)((char *)f + vfs_real_off());
  w->vfs = (vfs_state_t *)vfs;
  int rc = real->xOpen(real, name, w->real, flags, out_flags);
  const sqlite3_io_methods *m = w->real->pMethods;
  if (rc != SQLITE_OK || !m || m->iVersion < 1) {
    if (m) m->xClose(w->real);
    w->base.pMethods = NULL;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  w->methods = m;
  /* A newer SQLite's files may have methods past version 3: the shim offers those three
   * (SQLite then uses no later method of this file). */
  w->base.pMethods = &vfs_wal_methods[(m->iVersion > 3 ? 3 : m->iVersion) - 1];
  return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  return vfs_real(vfs)->xDelete(vfs_real(vfs), name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  return vfs_real(vfs)->xAccess(vfs_real(vfs), name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  return vfs_real(vfs)->xFullPathname(vfs_real(vfs), name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *name) {
  return vfs_real(vfs)->xDlOpen(vfs_real(vfs), name);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int n, char *out) {
  vfs_real(vfs)->xDlError(vfs_real(vfs), n, out);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void) {
  return vfs_real(vfs)->xDlSym(vfs_real(vfs), h, sym);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *h) {
  vfs_real(vfs)->xDlClose(vfs_real(vfs), h);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out) {
  return vfs_real(vfs)->xRandomness(vfs_real(vfs), n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us) {
  return vfs_real(vfs)->xSleep(vfs_real(vfs), us);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out) {
  return vfs_real(vfs)->xCurrentTime(vfs_real(vfs), out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out) {
  return vfs_real(vfs)->xGetLastError(vfs_real(vfs), n, out);
}

static int vfs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
  return vfs_real(vfs)->xCurrentTimeInt64(vfs_real(vfs), out);
}

static int vfs_set_syscall(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p) {
  return vfs_real(vfs)->xSetSystemCall(vfs_real(vfs), name, p);
}

static sqlite3_syscall_ptr vfs_get_syscall(sqlite3_vfs *vfs, const char *name) {
  return vfs_real(vfs)->xGetSystemCall(vfs_real(vfs), name);
}

static const char *vfs_next_syscall(sqlite3_vfs *vfs, const char *name) {
  return vfs_real(vfs)->xNextSystemCall(vfs_real(vfs), name);
}

static vfs_state_t vfs_the = {
    .base =
        {
            .zName = STORE_VFS_NAME,
            .xOpen = vfs_open,
            .xDelete = vfs_delete,
            .xAccess = vfs_access,
            .xFullPathname = vfs_full_pathname,
            .xDlOpen = vfs_dl_open,
            .xDlError = vfs_dl_error,
            .xDlSym = vfs_dl_sym,
            .xDlClose = vfs_dl_close,
            .xRandomness = vfs_randomness,
            .xSleep = vfs_sleep,
            .xCurrentTime = vfs_current_time,
            .xGetLastError = vfs_last_error,
            .xCurrentTimeInt64 = vfs_current_time64,
            .xSetSystemCall = vfs_set_syscall,
            .xGetSystemCall = vfs_get_syscall,
            .xNextSystemCall = vfs_next_syscall,
        },
    .once = PTHREAD_ONCE_INIT,
};

static void vfs_register(void) {
  sqlite3_vfs *real = sqlite3_vfs_find(NULL);
  int rc = real ? SQLITE_OK : SQLITE_ERROR;
  if (real && real->iVersion < 3) rc = SQLITE_ERROR; /* every member above must exist */
  if (rc == SQLITE_OK) {
    vfs_the.base.iVersion = 3;
    vfs_the.base.szOsFile = (int)(vfs_real_off() + (size_t)real->szOsFile);
    vfs_the.base.mxPathname = real->mxPathname;
    vfs_the.base.pAppData = real;
    rc = sqlite3_vfs_register(&vfs_the.base, 0);
  }
  if (rc == SQLITE_OK)
    vfs_the.registered = true;
  else
    log_warn("store", "WAL write buffering unavailable", "{s:i}", "code", rc);
}

const char *store__vfs(void) {
  pthread_once(&vfs_the.once, vfs_register);
  return vfs_the.registered ? STORE_VFS_NAME : NULL;
}

void store__vfs_counts(store_vfs_counts_t *out) {
  out->wal_writes = atomic_load(&vfs_the.wal_writes);
  out->wal_pwrites = atomic_load(&vfs_the.wal_pwrites);
  out->wal_flush_errs = atomic_load(&vfs_the.wal_flush_errs);
}

static bool vfs_is_wal(const sqlite3_file *f) {
  for (size_t i = 0; i < sizeof vfs_wal_methods / sizeof vfs_wal_methods[0]; i++)
    if (f->pMethods == &vfs_wal_methods[i]) return true;
  return false;
}

void store__vfs_rolled_back(sqlite3 *db) {
  if (!db || !sqlite3_get_autocommit(db)) return;
  sqlite3_file *f = NULL;
  /* In WAL mode the journal file SQLite hands out is the log's. */
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK) return;
  if (!f || !f->pMethods || !vfs_is_wal(f)) return;
  vfs_wal_t *w = (vfs_wal_t *)f;
  w->len = 0;
  w->committing = false;
}
