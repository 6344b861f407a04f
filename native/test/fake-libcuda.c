/*
 * A stand-in for libcuda.so.1 used only by tests on machines without a GPU.
 *
 * "Device memory" is a POSIX shm segment mapped into the process, so IPC
 * handles really work across processes and copies really move bytes. It checks
 * what the real driver checks and the addon must get right: a context must be
 * current on the calling thread (pool threads included), device pointers must
 * lie inside live allocations, an IPC handle cannot be opened by the process
 * that allocated it, and host ranges cannot be registered twice.
 *
 * Build: cc -shared -fPIC -O2 -o DIR/libcuda.so.1 fake-libcuda.c -lpthread
 * Use:   LD_LIBRARY_PATH=DIR node ...
 * Knobs: FAKE_CUDA_DEVICES (default 1), FAKE_CUDA_INIT_ERROR (a CUresult for cuInit).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct { char reserved[64]; } CUipcMemHandle;

enum {
  OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101,
  INVALID_CONTEXT = 201, MAP_FAILED_ = 205, INVALID_HANDLE = 400, ALREADY_REGISTERED = 712, NOT_REGISTERED = 713
};

#define MAX_ENTRIES 4096
#define TOTAL_MEMORY (8ULL << 30)

struct entry {
  int used;
  int kind; /* 1 device alloc, 2 imported, 3 registered host, 4 pinned host alloc */
  uintptr_t base;
  size_t size;
  char name[40];
};

static struct entry entries[MAX_ENTRIES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static int contexts[16];
static __thread void *current_ctx;
static unsigned long long sequence;

#define NEED_CTX() do { if (!initialized) return NOT_INITIALIZED; if (current_ctx == NULL) return INVALID_CONTEXT; } while (0)

static int device_count(void) {
  const char *v = getenv("FAKE_CUDA_DEVICES");
  return v ? atoi(v) : 1;
}

static struct entry *add_entry(int kind, uintptr_t base, size_t size, const char *name) {
  for (int i = 0; i < MAX_ENTRIES; i++) {
    if (!entries[i].used) {
      entries[i].used = 1;
      entries[i].kind = kind;
      entries[i].base = base;
      entries[i].size = size;
      snprintf(entries[i].name, sizeof entries[i].name, "%s", name ? name : "");
      return &entries[i];
    }
  }
  return NULL;
}

static struct entry *find(int kind_mask, uintptr_t p, size_t n) {
  for (int i = 0; i < MAX_ENTRIES; i++) {
    struct entry *e = &entries[i];
    if (e->used && ((1 << e->kind) & kind_mask) && p >= e->base && p - e->base <= e->size && n <= e->size - (p - e->base)) {
      return e;
    }
  }
  return NULL;
}

#define DEVICE_MEMORY ((1 << 1) | (1 << 2))

CUresult cuInit(unsigned flags) {
  (void)flags;
  const char *err = getenv("FAKE_CUDA_INIT_ERROR");
  if (err) return atoi(err);
  initialized = 1;
  return OK;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) { if (!initialized) return NOT_INITIALIZED; *n = device_count(); return OK; }
CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  if (ordinal < 0 || ordinal >= device_count()) return INVALID_DEVICE;
  *d = ordinal;
  return OK;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d) { snprintf(name, (size_t)len, "Fake CUDA Device %d", d); return OK; }
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) { (void)d; *bytes = TOTAL_MEMORY; return OK; }
CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
  (void)d;
  *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? 132 : 0;
  return OK;
}
CUresult cuDeviceGetPCIBusId(char *bus, int len, CUdevice d) { snprintf(bus, (size_t)len, "0000:%02x:00.0", d + 1); return OK; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice d) {
  if (!initialized) return NOT_INITIALIZED;
  if (d < 0 || d >= device_count() || d >= 16) return INVALID_DEVICE;
  *ctx = &contexts[d];
  return OK;
}
CUresult cuCtxSetCurrent(void *ctx) { current_ctx = ctx; return OK; }
CUresult cuCtxSynchronize(void) { NEED_CTX(); return OK; }

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  NEED_CTX();
  size_t used = 0;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < MAX_ENTRIES; i++) if (entries[i].used && entries[i].kind == 1) used += entries[i].size;
  pthread_mutex_unlock(&lock);
  *total = TOTAL_MEMORY;
  *free_bytes = TOTAL_MEMORY - used;
  return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t size) {
  NEED_CTX();
  if (size == 0) return INVALID_VALUE;
  if (size > TOTAL_MEMORY) return OUT_OF_MEMORY;
  char name[40];
  pthread_mutex_lock(&lock);
  snprintf(name, sizeof name, "/pmfakecuda-%d-%llu", (int)getpid(), ++sequence);
  pthread_mutex_unlock(&lock);
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return OUT_OF_MEMORY;
  if (ftruncate(fd, (off_t)size) != 0) { close(fd); shm_unlink(name); return OUT_OF_MEMORY; }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) { shm_unlink(name); return OUT_OF_MEMORY; }
  pthread_mutex_lock(&lock);
  add_entry(1, (uintptr_t)p, size, name);
  pthread_mutex_unlock(&lock);
  *ptr = (CUdeviceptr)(uintptr_t)p;
  return OK;
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
  NEED_CTX();
  pthread_mutex_lock(&lock);
  struct entry *e = find(1 << 1, (uintptr_t)ptr, 0);
  if (!e || e->base != (uintptr_t)ptr) { pthread_mutex_unlock(&lock); return INVALID_VALUE; }
  munmap((void *)e->base, e->size);
  shm_unlink(e->name);
  e->used = 0;
  pthread_mutex_unlock(&lock);
  return OK;
}

struct fake_handle { char magic[8]; int pid; int pad; unsigned long long size; char name[40]; };

CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr ptr) {
  NEED_CTX();
  pthread_mutex_lock(&lock);
  struct entry *e = find(1 << 1, (uintptr_t)ptr, 0);
  if (!e) { pthread_mutex_unlock(&lock); return INVALID_VALUE; }
  struct fake_handle h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, "PMFAKE1", 8);
  h.pid = getpid();
  h.size = e->size;
  snprintf(h.name, sizeof h.name, "%s", e->name);
  pthread_mutex_unlock(&lock);
  memcpy(handle->reserved, &h, sizeof h);
  return OK;
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *ptr, CUipcMemHandle handle, unsigned flags) {
  NEED_CTX();
  (void)flags;
  struct fake_handle h;
  memcpy(&h, handle.reserved, sizeof h);
  if (memcmp(h.magic, "PMFAKE1", 8) != 0) return INVALID_VALUE;
  if (h.pid == getpid()) return INVALID_CONTEXT;
  int fd = shm_open(h.name, O_RDWR, 0);
  if (fd < 0) return MAP_FAILED_;
  void *p = mmap(NULL, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return MAP_FAILED_;
  pthread_mutex_lock(&lock);
  add_entry(2, (uintptr_t)p, h.size, h.name);
  pthread_mutex_unlock(&lock);
  *ptr = (CUdeviceptr)(uintptr_t)p;
  return OK;
}

CUresult cuIpcCloseMemHandle(CUdeviceptr ptr) {
  NEED_CTX();
  pthread_mutex_lock(&lock);
  struct entry *e = find(1 << 2, (uintptr_t)ptr, 0);
  if (!e || e->base != (uintptr_t)ptr) { pthread_mutex_unlock(&lock); return INVALID_VALUE; }
  munmap((void *)e->base, e->size);
  e->used = 0;
  pthread_mutex_unlock(&lock);
  return OK;
}

static CUresult check_device(CUdeviceptr p, size_t n) {
  pthread_mutex_lock(&lock);
  struct entry *e = find(DEVICE_MEMORY, (uintptr_t)p, n);
  pthread_mutex_unlock(&lock);
  return e ? OK : INVALID_VALUE;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream) {
  NEED_CTX();
  (void)stream;
  if (check_device(dst, n) != OK) return INVALID_VALUE;
  memcpy((void *)(uintptr_t)dst, src, n);
  return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *stream) {
  NEED_CTX();
  (void)stream;
  if (check_device(src, n) != OK) return INVALID_VALUE;
  memcpy(dst, (const void *)(uintptr_t)src, n);
  return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *stream) {
  NEED_CTX();
  (void)stream;
  if (check_device(dst, n) != OK || check_device(src, n) != OK) return INVALID_VALUE;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  return OK;
}

CUresult cuStreamCreate(void **stream, unsigned flags) { NEED_CTX(); (void)flags; *stream = malloc(1); return OK; }
CUresult cuStreamDestroy_v2(void *stream) { free(stream); return OK; }
CUresult cuStreamSynchronize(void *stream) { NEED_CTX(); (void)stream; return OK; }

CUresult cuEventCreate(void **event, unsigned flags) {
  NEED_CTX();
  (void)flags;
  *event = calloc(1, sizeof(double));
  return OK;
}
CUresult cuEventRecord(void *event, void *stream) {
  NEED_CTX();
  (void)stream;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  *(double *)event = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  return OK;
}
CUresult cuEventSynchronize(void *event) { (void)event; return OK; }
CUresult cuEventElapsedTime(float *ms, void *start, void *stop) {
  *ms = (float)(*(double *)stop - *(double *)start);
  return OK;
}
CUresult cuEventDestroy_v2(void *event) { free(event); return OK; }

CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned flags) {
  NEED_CTX();
  (void)flags;
  pthread_mutex_lock(&lock);
  CUresult r = OK;
  for (int i = 0; i < MAX_ENTRIES; i++) {
    struct entry *e = &entries[i];
    if (e->used && e->kind == 3 && (uintptr_t)p < e->base + e->size && e->base < (uintptr_t)p + n) r = ALREADY_REGISTERED;
  }
  if (r == OK) add_entry(3, (uintptr_t)p, n, NULL);
  pthread_mutex_unlock(&lock);
  return r;
}
CUresult cuMemHostUnregister(void *p) {
  NEED_CTX();
  pthread_mutex_lock(&lock);
  struct entry *e = find(1 << 3, (uintptr_t)p, 0);
  CUresult r = NOT_REGISTERED;
  if (e && e->base == (uintptr_t)p) { e->used = 0; r = OK; }
  pthread_mutex_unlock(&lock);
  return r;
}

CUresult cuMemAllocHost_v2(void **p, size_t n) {
  NEED_CTX();
  void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return OUT_OF_MEMORY;
  pthread_mutex_lock(&lock);
  add_entry(4, (uintptr_t)m, n, NULL);
  pthread_mutex_unlock(&lock);
  *p = m;
  return OK;
}
CUresult cuMemFreeHost(void *p) {
  NEED_CTX();
  pthread_mutex_lock(&lock);
  struct entry *e = find(1 << 4, (uintptr_t)p, 0);
  CUresult r = INVALID_VALUE;
  if (e && e->base == (uintptr_t)p) { munmap(p, e->size); e->used = 0; r = OK; }
  pthread_mutex_unlock(&lock);
  return r;
}

static const char *error_name(CUresult r) {
  switch (r) {
    case OK: return "CUDA_SUCCESS";
    case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case MAP_FAILED_: return "CUDA_ERROR_MAP_FAILED";
    case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case ALREADY_REGISTERED: return "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED";
    case NOT_REGISTERED: return "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED";
    default: return NULL;
  }
}
CUresult cuGetErrorName(CUresult r, const char **s) { *s = error_name(r); return *s ? OK : INVALID_VALUE; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = error_name(r) ? "fake driver error" : NULL; return *s ? OK : INVALID_VALUE; }
