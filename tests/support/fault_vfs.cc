#include "support/fault_vfs.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>

namespace firebreak::testing {
namespace {

struct Faults {
  std::mutex mu;
  std::condition_variable released;
  std::string filter;  // guarded by mu
  bool hang = false;   // guarded by mu
  std::atomic<int> write_error{SQLITE_OK};
  std::atomic<int> sync_error{SQLITE_OK};
  std::atomic<int> injected{0};
};

Faults& GetFaults() {
  static Faults* faults = new Faults();  // used by connections until the process ends
  return *faults;
}

sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs fault_vfs;

// Our file object; the real VFS's file lives right behind it (szOsFile covers both).
struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
  bool affected;
};

sqlite3_file* Real(sqlite3_file* file) { return reinterpret_cast<FaultFile*>(file)->real; }
bool Affected(sqlite3_file* file) { return reinterpret_cast<FaultFile*>(file)->affected; }

int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int Read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), buf, n, off);
}
// Blocks while Hang(true) is in force.
void WaitWhileHung() {
  Faults& faults = GetFaults();
  std::unique_lock lock(faults.mu);
  faults.released.wait(lock, [&] { return !faults.hang; });
}

int Write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (Affected(f)) {
    WaitWhileHung();
    int error = GetFaults().write_error.load();
    if (error != SQLITE_OK) {
      GetFaults().injected.fetch_add(1);
      return error;
    }
  }
  return Real(f)->pMethods->xWrite(Real(f), buf, n, off);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int Sync(sqlite3_file* f, int flags) {
  if (Affected(f)) {
    Faults& faults = GetFaults();
    WaitWhileHung();
    int error = faults.sync_error.load();
    if (error != SQLITE_OK) {
      faults.injected.fetch_add(1);
      return error;
    }
  }
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int delete_flag) {
  return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
}
int Fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return Real(f)->pMethods->xFetch(Real(f), off, n, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), off, p);
}

// Version 3 methods (WAL needs the shm ones); the real file's version decides which of
// them SQLite may call, and it is at least what the unix VFS gives.
const sqlite3_io_methods kMethods = {3,         Close,        Read,       Write,
                                     Truncate,  Sync,         FileSize,   Lock,
                                     Unlock,    CheckReservedLock, FileControl, SectorSize,
                                     DeviceCharacteristics, ShmMap, ShmLock, ShmBarrier,
                                     ShmUnmap,  Fetch,        Unfetch};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* ours = reinterpret_cast<FaultFile*>(file);
  ours->real = reinterpret_cast<sqlite3_file*>(ours + 1);
  {
    Faults& faults = GetFaults();
    std::lock_guard lock(faults.mu);
    ours->affected = name != nullptr && !faults.filter.empty() &&
                     std::strstr(name, faults.filter.c_str()) != nullptr;
  }
  int rc = real_vfs->xOpen(real_vfs, name, ours->real, flags, out_flags);
  // SQLite calls xClose only when pMethods is set: leave it null when the open failed.
  ours->base.pMethods = rc == SQLITE_OK && ours->real->pMethods != nullptr ? &kMethods : nullptr;
  return rc;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return real_vfs->xDlOpen(real_vfs, name); }
void DlError(sqlite3_vfs*, int n, char* out) { real_vfs->xDlError(real_vfs, n, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs->xDlSym(real_vfs, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) { real_vfs->xDlClose(real_vfs, handle); }
int Randomness(sqlite3_vfs*, int n, char* out) { return real_vfs->xRandomness(real_vfs, n, out); }
int Sleep(sqlite3_vfs*, int micros) { return real_vfs->xSleep(real_vfs, micros); }
int CurrentTime(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int GetLastError(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError(real_vfs, n, out);
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

}  // namespace

FaultVfs& FaultVfs::Install() {
  static FaultVfs* installed = [] {
    real_vfs = sqlite3_vfs_find(nullptr);
    std::memset(&fault_vfs, 0, sizeof fault_vfs);
    fault_vfs.iVersion = 2;
    fault_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + real_vfs->szOsFile;
    fault_vfs.mxPathname = real_vfs->mxPathname;
    fault_vfs.zName = "firebreak-fault";
    fault_vfs.xOpen = Open;
    fault_vfs.xDelete = Delete;
    fault_vfs.xAccess = Access;
    fault_vfs.xFullPathname = FullPathname;
    fault_vfs.xDlOpen = DlOpen;
    fault_vfs.xDlError = DlError;
    fault_vfs.xDlSym = DlSym;
    fault_vfs.xDlClose = DlClose;
    fault_vfs.xRandomness = Randomness;
    fault_vfs.xSleep = Sleep;
    fault_vfs.xCurrentTime = CurrentTime;
    fault_vfs.xGetLastError = GetLastError;
    fault_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    sqlite3_vfs_register(&fault_vfs, /*makeDflt=*/1);
    return new FaultVfs();
  }();
  return *installed;
}

void FaultVfs::SetFilter(const std::string& filter) {
  std::lock_guard lock(GetFaults().mu);
  GetFaults().filter = filter;
}

void FaultVfs::FailWrites(int error) { GetFaults().write_error = error; }

void FaultVfs::FailSyncs(int error) { GetFaults().sync_error = error; }

void FaultVfs::Hang(bool hang) {
  Faults& faults = GetFaults();
  {
    std::lock_guard lock(faults.mu);
    faults.hang = hang;
  }
  faults.released.notify_all();
}

void FaultVfs::Clear() {
  FailWrites(SQLITE_OK);
  FailSyncs(SQLITE_OK);
  Hang(false);
}

int FaultVfs::FaultsInjected() const { return GetFaults().injected.load(); }

}  // namespace firebreak::testing
