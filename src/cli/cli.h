// The `firebreak` command line (DESIGN §1). Exit codes: 0 ok, 1 runtime failure,
// 2 usage or config error.
#pragma once

#include <map>
#include <string>

namespace firebreak::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Main(int argc, char** argv);

enum class Role { kAll, kIngest, kWorker };
// run / ingest / worker: serves until SIGTERM or SIGINT.
int Serve(const std::string& config_path, Role role);
int Check(const std::string& config_path);
int Send(const std::string& config_path, const std::string& source, const std::string& data,
         const std::string& url);
int QueueStats(const std::string& config_path, bool json);
int DlqList(const std::string& config_path, const std::string& type, int limit,
            const std::string& cursor);
int DlqShow(const std::string& config_path, const std::string& id);
int DlqReplay(const std::string& config_path, const std::string& id, bool all,
              const std::string& type);
int DlqPurge(const std::string& config_path, const std::string& id, bool all,
             const std::string& type);

// jobs list|show|retry|cancel, queue pause|resume, dead list|replay|delete (job_tools.cc).
// `params`: the filter keys of JobFilterFromParams; `filter_text`: "k=v,k=v".
int JobsList(const std::string& config_path, const std::map<std::string, std::string>& params,
             int limit, const std::string& cursor, bool json);
int JobsShow(const std::string& config_path, const std::string& id);
int JobsRetry(const std::string& config_path, const std::string& id);
int JobsCancel(const std::string& config_path, const std::string& id);
int QueuePause(const std::string& config_path, const std::string& type, bool paused);
int DeadGroups(const std::string& config_path, const std::string& filter_text);
int DeadBulk(const std::string& config_path, bool replay, const std::string& filter_text,
             bool dry_run, double rate);

}  // namespace firebreak::cli
