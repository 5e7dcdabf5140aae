// Storage faults for SQLite, injected where a real one cannot be made in a test (after
// leveldb's SpecialEnv): a VFS that wraps the default one and, for files whose path
// contains a filter, fails writes or syncs with a chosen SQLite error (SQLITE_FULL as
// a full disk gives, SQLITE_IOERR_* as a failing one) or makes writes and syncs hang
// until told to go on (a stalled disk or NFS server). Everything else passes through.
//
// Install() registers it as the process's default VFS, so every connection opened
// afterwards (the queue's writer and readers) goes through it; a test process runs one
// test (ctest), and the filter keeps other files untouched.
#pragma once

#include <sqlite3.h>

#include <string>

namespace firebreak::testing {

class FaultVfs {
 public:
  // Registers the VFS (once per process) and returns it with no fault set.
  static FaultVfs& Install();

  // Only files whose path contains `filter` are affected ("" = none).
  void SetFilter(const std::string& filter);
  // xWrite of affected files returns `error` (SQLITE_OK = no fault).
  void FailWrites(int error);
  // xSync of affected files returns `error` (SQLITE_OK = no fault).
  void FailSyncs(int error);
  // While on, xWrite and xSync of affected files block until Hang(false).
  void Hang(bool hang);
  // Removes every fault (and releases hung calls).
  void Clear();

  // Faults returned so far (writes and syncs), for asserting the fault was hit.
  int FaultsInjected() const;
};

}  // namespace firebreak::testing
