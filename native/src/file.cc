// Files as regions (the disk tier, and RAM regions on tmpfs/hugetlbfs mounts):
// create with preallocation, map, fsync, copy off the JS thread, statfs.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "regions.h"

namespace pm {

namespace {

constexpr long kHugetlbfsMagic = 0x958458f6;
constexpr long kTmpfsMagic = 0x01021994;
constexpr size_t kCopyBufferBytes = 8u << 20;

bool ValidPath(Napi::Env env, const std::string& path, const char* what) {
  if (path.empty() || path[0] != '/') {
    Throw(env, "EINVAL", std::string(what) + " must be an absolute path, got \"" + path + "\"");
    return false;
  }
  if (path.size() > 4095) {
    Throw(env, "EINVAL", std::string(what) + " is longer than PATH_MAX");
    return false;
  }
  return true;
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return path.substr(0, slash);
}

std::string FsType(long magic) {
  switch (magic) {
    case kTmpfsMagic: return "tmpfs";
    case kHugetlbfsMagic: return "hugetlbfs";
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case static_cast<long>(0x9123683E): return "btrfs";
    case 0x794c7630: return "overlayfs";
    case 0x6969: return "nfs";
    default: return "other";
  }
}

// One file region to create, and how it went.
struct FileCreateJob {
  std::string path;
  uint64_t size = 0;
  unsigned mode = 0600;
  bool preallocated = false;
  Failure failure;
};

void FailCreate(FileCreateJob* job, int fd, bool created, const char* syscall, int err) {
  job->failure = SysFailure(syscall, err, job->path + " (" + std::to_string(job->size) + " bytes)", "");
  close(fd);
  if (created) unlink(job->path.c_str());
}

// Creates (or, not exclusive, resizes) one file with its blocks reserved; off the JS thread.
void CreateFileRegion(FileCreateJob* job, bool exclusive) {
  bool created = true;
  int fd = open(job->path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, job->mode);
  if (fd < 0 && errno == EEXIST && !exclusive) {
    created = false;
    fd = open(job->path.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) {
    job->failure = SysFailure("open", errno, job->path, "");
    return;
  }
  if (created && fchmod(fd, job->mode) != 0) return FailCreate(job, fd, created, "fchmod", errno);
  struct statfs sfs;
  if (fstatfs(fd, &sfs) == 0 && static_cast<long>(sfs.f_type) == kHugetlbfsMagic && sfs.f_bsize > 0) {
    // hugetlbfs sizes are whole huge pages.
    uint64_t page = static_cast<uint64_t>(sfs.f_bsize);
    job->size = (job->size + page - 1) / page * page;
  }
  if (ftruncate(fd, static_cast<off_t>(job->size)) != 0) return FailCreate(job, fd, created, "ftruncate", errno);
  // Reserve the blocks now so writers get ENOSPC here, not SIGBUS or a short
  // write later. Filesystems without fallocate keep the sparse file.
  if (fallocate(fd, 0, 0, static_cast<off_t>(job->size)) == 0) {
    job->preallocated = true;
  } else if (errno != EOPNOTSUPP && errno != ENOSYS) {
    return FailCreate(job, fd, created, "fallocate", errno);
  }
  close(fd);
}

Napi::Object FileRegionValue(Napi::Env env, const FileCreateJob& job) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("path", job.path);
  out.Set("size", SizeValue(env, job.size));
  out.Set("preallocated", Napi::Boolean::New(env, job.preallocated));
  return out;
}

class FileCreateWorker : public PromiseWorker {
 public:
  FileCreateWorker(Napi::Env env, FileCreateJob job, bool exclusive)
      : PromiseWorker(env, "pm:fileCreate"), job_(std::move(job)), exclusive_(exclusive) {}

 protected:
  void Execute() override {
    CreateFileRegion(&job_, exclusive_);
    failure_ = job_.failure;
  }

  Napi::Value Result(Napi::Env env) override { return FileRegionValue(env, job_); }

 private:
  FileCreateJob job_;
  bool exclusive_;
};

// Many files in one trip to the libuv pool (the tier agent's CreateRegions):
// each succeeds or fails on its own.
class FileCreateManyWorker : public PromiseWorker {
 public:
  FileCreateManyWorker(Napi::Env env, std::vector<FileCreateJob> jobs, bool exclusive)
      : PromiseWorker(env, "pm:fileCreateMany"), jobs_(std::move(jobs)), exclusive_(exclusive) {}

 protected:
  void Execute() override {
    for (FileCreateJob& job : jobs_) CreateFileRegion(&job, exclusive_);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, jobs_.size());
    for (size_t i = 0; i < jobs_.size(); i++) {
      const FileCreateJob& job = jobs_[i];
      out.Set(static_cast<uint32_t>(i),
              job.failure.failed() ? MakeError(env, job.failure).Value() : FileRegionValue(env, job));
    }
    return out;
  }

 private:
  std::vector<FileCreateJob> jobs_;
  bool exclusive_;
};

// fileCreate(path, size, {mode = 0o600, exclusive = true}) -> Promise<{path, size, preallocated}>
Napi::Value FileCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  uint64_t size = 0;
  Napi::Object options;
  unsigned mode = 0600;
  bool exclusive = true;
  if (!ArgString(info, 0, "path", &path) || !ValidPath(env, path, "path") || !ArgSize(info, 1, "size", &size) ||
      !ArgOptions(info, 2, &options) || !OptMode(env, options, "mode", 0600, &mode) ||
      !OptBool(env, options, "exclusive", true, &exclusive)) {
    return env.Undefined();
  }
  FileCreateJob job;
  job.path = path;
  job.size = size;
  job.mode = mode;
  return (new FileCreateWorker(env, std::move(job), exclusive))->Start();
}

// fileCreateMany([{path, size, mode = 0o600}], {exclusive = true})
//   -> Promise<Array<{path, size, preallocated} | Error>>, in input order
Napi::Value FileCreateMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return Throw(env, "EINVAL", "files must be an array of {path, size, mode}");
  Napi::Array files = info[0].As<Napi::Array>();
  Napi::Object options;
  bool exclusive = true;
  if (!ArgOptions(info, 1, &options) || !OptBool(env, options, "exclusive", true, &exclusive)) return env.Undefined();
  std::vector<FileCreateJob> jobs(files.Length());
  for (uint32_t i = 0; i < files.Length(); i++) {
    Napi::Value entry = files.Get(i);
    if (!entry.IsObject()) return Throw(env, "EINVAL", "files[" + std::to_string(i) + "] must be an object {path, size, mode}");
    Napi::Object file = entry.As<Napi::Object>();
    Napi::Value path = file.Get("path");
    if (!path.IsString()) return Throw(env, "EINVAL", "files[" + std::to_string(i) + "].path must be a string");
    jobs[i].path = path.As<Napi::String>().Utf8Value();
    bool present = false;
    if (!ValidPath(env, jobs[i].path, "path") || !OptSize(env, file, "size", &jobs[i].size, &present) ||
        !OptMode(env, file, "mode", 0600, &jobs[i].mode)) {
      return env.Undefined();
    }
    if (!present) return Throw(env, "EINVAL", "files[" + std::to_string(i) + "].size is required");
  }
  return (new FileCreateManyWorker(env, std::move(jobs), exclusive))->Start();
}

// mapFile(path, {writable, copyOnWrite, offset, length, prefault, hugePages}) -> Buffer
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  Napi::Object options;
  MapRequest request;
  if (!ArgString(info, 0, "path", &path) || !ValidPath(env, path, "path") || !ArgOptions(info, 1, &options) ||
      !ParseMapOptions(env, options, &request)) {
    return env.Undefined();
  }
  int fd = open(path.c_str(), (request.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Throw(env, SysFailure("open", errno, path, ""));
  Napi::Value result = MapFd(env, fd, request, "file", path);
  close(fd);
  return result;
}

// mapFd(fd, options) -> Buffer, for descriptors the caller already holds.
Napi::Value MapFdBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t fd = 0;
  Napi::Object options;
  MapRequest request;
  if (!ArgSize(info, 0, "fd", &fd, true) || !ArgOptions(info, 1, &options) ||
      !ParseMapOptions(env, options, &request)) {
    return env.Undefined();
  }
  if (fd > 0x7fffffff) return Throw(env, "EINVAL", "fd is not a file descriptor");
  return MapFd(env, static_cast<int>(fd), request, "file", "fd " + std::to_string(fd));
}

class FsyncWorker : public PromiseWorker {
 public:
  FsyncWorker(Napi::Env env, std::string path) : PromiseWorker(env, "pm:fsync"), path_(std::move(path)) {}

 protected:
  void Execute() override {
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      failure_ = SysFailure("open", errno, path_, "");
      return;
    }
    if (fsync(fd) != 0) failure_ = SysFailure("fsync", errno, path_, "the data may not be durable; retry or move it elsewhere");
    close(fd);
  }

 private:
  std::string path_;
};

// fsyncPath(path) -> Promise<void>; works on files and directories.
Napi::Value FsyncPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, "path", &path) || !ValidPath(env, path, "path")) return env.Undefined();
  return (new FsyncWorker(env, path))->Start();
}

bool WriteAll(int fd, const uint8_t* data, size_t length, off_t offset, int* err) {
  while (length > 0) {
    ssize_t n = pwrite(fd, data, length, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    data += n;
    length -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

class CopyFileWorker : public PromiseWorker {
 public:
  CopyFileWorker(Napi::Env env, std::string src, std::string dst, bool do_fsync, unsigned mode, bool exclusive)
      : PromiseWorker(env, "pm:copyFile"),
        src_(std::move(src)),
        dst_(std::move(dst)),
        fsync_(do_fsync),
        mode_(mode),
        exclusive_(exclusive) {}

 protected:
  void Execute() override {
    int in = open(src_.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      failure_ = SysFailure("open", errno, src_, "");
      return;
    }
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
      failure_.code = "EINVAL";
      failure_.message = src_ + " is not a regular file: copyFile copies regular files only";
      close(in);
      return;
    }
    bool created = true;
    int out = open(dst_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_);
    if (out < 0 && errno == EEXIST && !exclusive_) {
      created = false;
      out = open(dst_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    }
    if (out < 0) {
      failure_ = SysFailure("open", errno, dst_, errno == EEXIST ? "the destination exists: pass exclusive: false to overwrite it" : "");
      close(in);
      return;
    }
    if (created) fchmod(out, mode_);
    posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t expected = static_cast<uint64_t>(st.st_size);
    if (expected > 0 && fallocate(out, 0, 0, static_cast<off_t>(expected)) != 0 && errno == ENOSPC) {
      Abort(in, out, created, SysFailure("fallocate", ENOSPC, dst_, ""));
      return;
    }
    Failure failure;
    if (!CopyRange(in, out, &failure) && !CopyBuffered(in, out, &failure)) {
      Abort(in, out, created, failure);
      return;
    }
    // The source may have shrunk since fstat; drop any preallocated tail.
    if (copied_ != expected && ftruncate(out, static_cast<off_t>(copied_)) != 0) {
      Abort(in, out, created, SysFailure("ftruncate", errno, dst_, ""));
      return;
    }
    if (fsync_) {
      if (fsync(out) != 0) {
        Abort(in, out, created, SysFailure("fsync", errno, dst_, ""));
        return;
      }
      // A new file is durable only once its directory entry is.
      int dir = open(DirName(dst_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir >= 0) {
        fsync(dir);
        close(dir);
      }
    }
    close(in);
    close(out);
  }

  Napi::Value Result(Napi::Env env) override { return SizeValue(env, copied_); }

 private:
  // copy_file_range keeps the bytes in the kernel (and reflinks where the
  // filesystem can). Returns false, with copied_ still 0, when it is unusable.
  bool CopyRange(int in, int out, Failure* failure) {
    loff_t in_off = 0;
    loff_t out_off = 0;
    for (;;) {
      ssize_t n = copy_file_range(in, &in_off, out, &out_off, 1u << 30, 0);
      if (n == 0) return true;
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        if (copied_ == 0 && (err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == EBADF)) {
          return false;
        }
        *failure = SysFailure("copy_file_range", err, src_ + " -> " + dst_, "");
        copied_ = UINT64_MAX;  // do not retry with the buffered path
        return false;
      }
      copied_ += static_cast<uint64_t>(n);
    }
  }

  bool CopyBuffered(int in, int out, Failure* failure) {
    if (copied_ == UINT64_MAX) return false;
    void* raw = nullptr;
    // A page-aligned buffer keeps the kernel on its fast copy path.
    if (posix_memalign(&raw, 4096, kCopyBufferBytes) != 0) {
      *failure = SysFailure("posix_memalign", ENOMEM, "copy buffer", "");
      return false;
    }
    uint8_t* buffer = static_cast<uint8_t*>(raw);
    copied_ = 0;
    bool ok = true;
    for (;;) {
      ssize_t n = pread(in, buffer, kCopyBufferBytes, static_cast<off_t>(copied_));
      if (n < 0) {
        if (errno == EINTR) continue;
        *failure = SysFailure("read", errno, src_, "");
        ok = false;
        break;
      }
      if (n == 0) break;
      int err = 0;
      if (!WriteAll(out, buffer, static_cast<size_t>(n), static_cast<off_t>(copied_), &err)) {
        *failure = SysFailure("write", err, dst_, "");
        ok = false;
        break;
      }
      copied_ += static_cast<uint64_t>(n);
    }
    free(buffer);
    return ok;
  }

  void Abort(int in, int out, bool created, const Failure& failure) {
    failure_ = failure;
    close(in);
    close(out);
    if (created) unlink(dst_.c_str());
  }

  std::string src_;
  std::string dst_;
  bool fsync_;
  unsigned mode_;
  bool exclusive_;
  uint64_t copied_ = 0;
};

// copyFile(src, dst, {fsync = false, mode = 0o600, exclusive = false}) -> Promise<bytes copied>
Napi::Value CopyFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src;
  std::string dst;
  Napi::Object options;
  bool do_fsync = false;
  unsigned mode = 0600;
  bool exclusive = false;
  if (!ArgString(info, 0, "src", &src) || !ValidPath(env, src, "src") || !ArgString(info, 1, "dst", &dst) ||
      !ValidPath(env, dst, "dst") || !ArgOptions(info, 2, &options) ||
      !OptBool(env, options, "fsync", false, &do_fsync) || !OptMode(env, options, "mode", 0600, &mode) ||
      !OptBool(env, options, "exclusive", false, &exclusive)) {
    return env.Undefined();
  }
  if (src == dst) return Throw(env, "EINVAL", "src and dst are the same file");
  return (new CopyFileWorker(env, src, dst, do_fsync, mode, exclusive))->Start();
}

// statFs(path) -> {type, pageSize, blockSize, totalBytes, freeBytes, availableBytes}
Napi::Value StatFs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, "path", &path) || !ValidPath(env, path, "path")) return env.Undefined();
  struct statfs sfs;
  if (statfs(path.c_str(), &sfs) != 0) return Throw(env, SysFailure("statfs", errno, path, ""));
  long magic = static_cast<long>(sfs.f_type);
  uint64_t bsize = static_cast<uint64_t>(sfs.f_bsize);
  uint64_t page = magic == kHugetlbfsMagic ? bsize : static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", FsType(magic));
  out.Set("pageSize", SizeValue(env, page));
  out.Set("blockSize", SizeValue(env, bsize));
  out.Set("totalBytes", SizeValue(env, static_cast<uint64_t>(sfs.f_blocks) * bsize));
  out.Set("freeBytes", SizeValue(env, static_cast<uint64_t>(sfs.f_bfree) * bsize));
  out.Set("availableBytes", SizeValue(env, static_cast<uint64_t>(sfs.f_bavail) * bsize));
  return out;
}

}  // namespace

void InitFile(Napi::Env env, Napi::Object exports) {
  exports.Set("fileCreate", Napi::Function::New(env, FileCreate, "fileCreate"));
  exports.Set("fileCreateMany", Napi::Function::New(env, FileCreateMany, "fileCreateMany"));
  exports.Set("mapFile", Napi::Function::New(env, MapFile, "mapFile"));
  exports.Set("mapFd", Napi::Function::New(env, MapFdBinding, "mapFd"));
  exports.Set("fsyncPath", Napi::Function::New(env, FsyncPath, "fsyncPath"));
  exports.Set("copyFile", Napi::Function::New(env, CopyFile, "copyFile"));
  exports.Set("statFs", Napi::Function::New(env, StatFs, "statFs"));
}

}  // namespace pm
