// POSIX shared memory segments (the RAM tier): create, open, resize, unlink,
// stat, list, map.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "regions.h"

namespace pm {

namespace {

constexpr const char* kShmDir = "/dev/shm";
constexpr size_t kMaxShmName = 255;  // NAME_MAX, without the leading '/'

bool ValidName(Napi::Env env, const std::string& name) {
  std::string problem;
  if (name.size() < 2 || name[0] != '/') {
    problem = "must start with '/' followed by at least one character";
  } else if (name.size() - 1 > kMaxShmName) {
    problem = "must be at most 255 characters after the leading '/'";
  } else if (name == "/." || name == "/..") {
    problem = "must not be '.' or '..'";
  } else {
    for (size_t i = 1; i < name.size(); ++i) {
      char c = name[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-' || c == ':' || c == '@' || c == '+' || c == '=';
      if (!ok) {
        problem = c == '/' ? "must not contain a second '/'"
                           : "may only contain letters, digits and . _ - : @ + = after the leading '/'";
        break;
      }
    }
  }
  if (problem.empty()) return true;
  Throw(env, "EINVAL", "invalid shared memory name \"" + name + "\": it " + problem + " (e.g. \"/pm-1234\")");
  return false;
}

std::string ShmHint(int err) {
  switch (err) {
    case EEXIST:
      return "a segment with this name already exists: choose another name, or unlink the stale one if no "
             "process uses it";
    case ENOENT:
      return "no such segment: it was never created or was already unlinked (list them with listShm)";
    case EACCES:
      return "permission denied: the segment belongs to another user or its mode forbids this access";
    case ENOSPC:
      return "/dev/shm is full: free segments, raise its size (mount -o remount,size=... /dev/shm, or docker "
             "--shm-size), or spill to disk";
    default:
      return "";
  }
}

Napi::Object InfoFromStat(Napi::Env env, const std::string& name, const struct stat& st) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("size", SizeValue(env, static_cast<uint64_t>(st.st_size)));
  out.Set("mode", Napi::Number::New(env, st.st_mode & 07777));
  out.Set("uid", Napi::Number::New(env, st.st_uid));
  out.Set("gid", Napi::Number::New(env, st.st_gid));
  out.Set("mtimeMs",
          Napi::Number::New(env, static_cast<double>(st.st_mtim.tv_sec) * 1e3 + st.st_mtim.tv_nsec / 1e6));
  return out;
}

// Reserving with fallocate turns a later SIGBUS (tmpfs full while writing
// through a mapping) into ENOSPC now.
int Reserve(int fd, uint64_t from, uint64_t length, bool* reserved) {
  *reserved = false;
  if (length == 0) return 0;
  if (fallocate(fd, 0, static_cast<off_t>(from), static_cast<off_t>(length)) == 0) {
    *reserved = true;
    return 0;
  }
  if (errno == EOPNOTSUPP || errno == ENOSYS) return 0;
  return errno;
}

class ShmCreateWorker : public PromiseWorker {
 public:
  ShmCreateWorker(Napi::Env env, std::string name, uint64_t size, unsigned mode, bool reserve)
      : PromiseWorker(env, "pm:shmCreate"), name_(std::move(name)), size_(size), mode_(mode), reserve_(reserve) {}

 protected:
  void Execute() override {
    int fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode_);
    if (fd < 0) {
      failure_ = SysFailure("shm_open", errno, name_, ShmHint(errno));
      return;
    }
    // The umask may have cleared bits of the requested mode.
    if (fchmod(fd, mode_) != 0 || ftruncate(fd, static_cast<off_t>(size_)) != 0) {
      failure_ = SysFailure("ftruncate", errno, name_, ShmHint(errno));
      close(fd);
      shm_unlink(name_.c_str());
      return;
    }
    if (reserve_) {
      int err = Reserve(fd, 0, size_, &reserved_);
      if (err != 0) {
        failure_ = SysFailure("fallocate", err, name_ + " (" + std::to_string(size_) + " bytes)", ShmHint(err));
        close(fd);
        shm_unlink(name_.c_str());
        return;
      }
    }
    close(fd);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("name", name_);
    out.Set("size", SizeValue(env, size_));
    out.Set("reserved", Napi::Boolean::New(env, reserved_));
    return out;
  }

 private:
  std::string name_;
  uint64_t size_;
  unsigned mode_;
  bool reserve_;
  bool reserved_ = false;
};

// shmCreate(name, size, {mode = 0o600, reserve = true}) -> Promise<{name, size, reserved}>
Napi::Value ShmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  uint64_t size = 0;
  Napi::Object options;
  unsigned mode = 0600;
  bool reserve = true;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name) || !ArgSize(info, 1, "size", &size) ||
      !ArgOptions(info, 2, &options) || !OptMode(env, options, "mode", 0600, &mode) ||
      !OptBool(env, options, "reserve", true, &reserve)) {
    return env.Undefined();
  }
  return (new ShmCreateWorker(env, name, size, mode, reserve))->Start();
}

class ShmResizeWorker : public PromiseWorker {
 public:
  ShmResizeWorker(Napi::Env env, std::string name, uint64_t size, bool allow_shrink, bool reserve)
      : PromiseWorker(env, "pm:shmResize"),
        name_(std::move(name)),
        size_(size),
        allow_shrink_(allow_shrink),
        reserve_(reserve) {}

 protected:
  void Execute() override {
    int fd = shm_open(name_.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      failure_ = SysFailure("shm_open", errno, name_, ShmHint(errno));
      return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      failure_ = SysFailure("fstat", errno, name_, "");
      close(fd);
      return;
    }
    uint64_t old_size = static_cast<uint64_t>(st.st_size);
    if (size_ < old_size && !allow_shrink_) {
      failure_.code = "EINVAL";
      failure_.message = "refusing to shrink " + name_ + " from " + std::to_string(old_size) + " to " +
                         std::to_string(size_) +
                         " bytes: processes that still map the tail would crash with SIGBUS; pass allowShrink: "
                         "true once no mapping covers the tail";
      close(fd);
      return;
    }
    if (ftruncate(fd, static_cast<off_t>(size_)) != 0) {
      failure_ = SysFailure("ftruncate", errno, name_, ShmHint(errno));
      close(fd);
      return;
    }
    if (reserve_ && size_ > old_size) {
      bool reserved = false;
      int err = Reserve(fd, old_size, size_ - old_size, &reserved);
      if (err != 0) {
        failure_ = SysFailure("fallocate", err, name_, ShmHint(err));
        if (ftruncate(fd, static_cast<off_t>(old_size)) != 0) {
          failure_.message += " (and restoring the old size failed)";
        }
      }
    }
    close(fd);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("name", name_);
    out.Set("size", SizeValue(env, size_));
    return out;
  }

 private:
  std::string name_;
  uint64_t size_;
  bool allow_shrink_;
  bool reserve_;
};

// shmResize(name, size, {allowShrink = false, reserve = true}) -> Promise<{name, size}>
Napi::Value ShmResize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  uint64_t size = 0;
  Napi::Object options;
  bool allow_shrink = false;
  bool reserve = true;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name) || !ArgSize(info, 1, "size", &size) ||
      !ArgOptions(info, 2, &options) || !OptBool(env, options, "allowShrink", false, &allow_shrink) ||
      !OptBool(env, options, "reserve", true, &reserve)) {
    return env.Undefined();
  }
  return (new ShmResizeWorker(env, name, size, allow_shrink, reserve))->Start();
}

// shmOpen(name, writable) -> fd (the caller closes it with fs.closeSync)
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  bool writable = false;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name) || !ArgBool(info, 1, "writable", false, &writable)) {
    return env.Undefined();
  }
  int fd = shm_open(name.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
  if (fd < 0) return Throw(env, SysFailure("shm_open", errno, name, ShmHint(errno)));
  return Napi::Number::New(env, fd);
}

// shmUnlink(name): removes the name; mappings stay valid until unmapped.
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name)) return env.Undefined();
  if (shm_unlink(name.c_str()) != 0) return Throw(env, SysFailure("shm_unlink", errno, name, ShmHint(errno)));
  return env.Undefined();
}

// shmStat(name) -> {name, size, mode, uid, gid, mtimeMs}
Napi::Value ShmStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name)) return env.Undefined();
  std::string path = std::string(kShmDir) + name;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Throw(env, SysFailure("stat", errno, name, ShmHint(errno)));
  return InfoFromStat(env, name, st);
}

// mapShm(name, {writable, copyOnWrite, offset, length, prefault, hugePages}) -> Buffer
Napi::Value MapShm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  Napi::Object options;
  MapRequest request;
  if (!ArgString(info, 0, "name", &name) || !ValidName(env, name) || !ArgOptions(info, 1, &options) ||
      !ParseMapOptions(env, options, &request)) {
    return env.Undefined();
  }
  int fd = shm_open(name.c_str(), (request.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
  if (fd < 0) return Throw(env, SysFailure("shm_open", errno, name, ShmHint(errno)));
  Napi::Value result = MapFd(env, fd, request, "shm", name);
  close(fd);
  return result;
}

// listShm(prefix = "/") -> [{name, size, mode, uid, gid, mtimeMs}], sorted by name
Napi::Value ListShm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string prefix = "/";
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!ArgString(info, 0, "prefix", &prefix)) return env.Undefined();
    if (prefix.empty() || prefix[0] != '/' || prefix.find('/', 1) != std::string::npos) {
      return Throw(env, "EINVAL", "prefix must start with '/' and contain no other '/' (e.g. \"/pm-\")");
    }
  }
  DIR* dir = opendir(kShmDir);
  if (dir == nullptr) return Throw(env, SysFailure("opendir", errno, kShmDir, "is /dev/shm mounted?"));
  std::vector<std::string> names;
  while (struct dirent* entry = readdir(dir)) {
    std::string name = std::string("/") + entry->d_name;
    if (name == "/." || name == "/..") continue;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  Napi::Array out = Napi::Array::New(env);
  uint32_t index = 0;
  for (const std::string& name : names) {
    std::string path = std::string(kShmDir) + name;
    struct stat st;
    // Entries can vanish between readdir and stat; that is not an error.
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.Set(index++, InfoFromStat(env, name, st));
  }
  return out;
}

}  // namespace

void InitShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate, "shmCreate"));
  exports.Set("shmResize", Napi::Function::New(env, ShmResize, "shmResize"));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("shmStat", Napi::Function::New(env, ShmStat, "shmStat"));
  exports.Set("mapShm", Napi::Function::New(env, MapShm, "mapShm"));
  exports.Set("listShm", Napi::Function::New(env, ListShm, "listShm"));
}

}  // namespace pm
