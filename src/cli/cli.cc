#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <iostream>

namespace firebreak::cli {

int Main(int argc, char** argv) {
  CLI::App app{"firebreak: bot infrastructure that doesn't catch fire"};
  app.require_subcommand(1);
  std::string config_path = "firebreak.toml";
  auto add_config = [&config_path](CLI::App* cmd) {
    cmd->add_option("-c,--config", config_path, "config file (TOML)")->capture_default_str();
  };

  auto* run = app.add_subcommand("run", "ingress + worker in one process");
  add_config(run);
  auto* ingest = app.add_subcommand("ingest", "ingress only");
  add_config(ingest);
  auto* worker = app.add_subcommand("worker", "worker only");
  add_config(worker);
  auto* check = app.add_subcommand("check", "validate config and resolve every secret");
  add_config(check);

  auto* send = app.add_subcommand("send", "sign an event as the platform would and POST it");
  add_config(send);
  std::string source, data, url;
  send->add_option("--source", source, "source name from [[sources]]")->required();
  send->add_option("--data", data, "JSON body, or @file (default: a sample event)");
  send->add_option("--url", url, "ingress base URL (default: from server.listen)");

  auto* queue = app.add_subcommand("queue", "queue tools");
  queue->require_subcommand(1);
  auto* stats = queue->add_subcommand(
      "stats", "depth per job type and state; arrivals/s, mean job time, workers needed");
  add_config(stats);
  bool json = false;
  stats->add_flag("--json", json, "print JSON");

  std::string pause_type;
  auto* pause = queue->add_subcommand("pause", "stop workers claiming a job type (ingress still accepts)");
  add_config(pause);
  pause->add_option("type", pause_type, "job type")->required();
  auto* resume = queue->add_subcommand("resume", "let workers claim a paused job type again");
  add_config(resume);
  resume->add_option("type", pause_type, "job type")->required();

  // jobs: search and act on any job, as the admin API does (same code, same audit log).
  auto* jobs = app.add_subcommand("jobs", "search jobs and act on one");
  jobs->require_subcommand(1);
  std::map<std::string, std::string> job_filter;
  std::string job_id, job_cursor;
  int job_limit = 50;
  auto* jobs_list = jobs->add_subcommand("list", "jobs matching a filter, newest first");
  add_config(jobs_list);
  for (const char* key : {"state", "type", "source", "key", "q", "from", "to", "trace_id"}) {
    jobs_list->add_option_function<std::string>(
        std::string("--") + (std::string(key) == "trace_id" ? "trace-id" : key),
        [&job_filter, key](const std::string& value) { job_filter[key] = value; },
        std::string("filter: ") + key);
  }
  jobs_list->add_option("--limit", job_limit, "page size")->check(CLI::Range(1, 1000));
  jobs_list->add_option("--cursor", job_cursor, "cursor from the previous page");
  bool jobs_json = false;
  jobs_list->add_flag("--json", jobs_json, "print JSON");
  auto* jobs_show = jobs->add_subcommand("show", "a job with its attempts, actions and replays");
  add_config(jobs_show);
  jobs_show->add_option("id", job_id, "job id")->required();
  auto* jobs_retry = jobs->add_subcommand(
      "retry", "run a dead/finished job again as a new job, or a delayed one now");
  add_config(jobs_retry);
  jobs_retry->add_option("id", job_id, "job id")->required();
  auto* jobs_cancel = jobs->add_subcommand("cancel", "cancel a waiting job");
  add_config(jobs_cancel);
  jobs_cancel->add_option("id", job_id, "job id")->required();

  // dead: the dead-letter queue by filter (grouped by error, bulk replay and delete).
  auto* dead = app.add_subcommand("dead", "dead-letter queue by filter");
  dead->require_subcommand(1);
  std::string dead_filter;
  bool dead_dry_run = false;
  double dead_rate = 0;
  auto* dead_list = dead->add_subcommand("list", "dead jobs grouped by error fingerprint");
  add_config(dead_list);
  dead_list->add_option("--filter", dead_filter, "type=,source=,key=,q=,from=,to=,fingerprint=");
  auto* dead_replay = dead->add_subcommand("replay", "replay the dead jobs a filter matches");
  auto* dead_delete = dead->add_subcommand("delete", "delete the dead jobs a filter matches");
  for (CLI::App* cmd : {dead_replay, dead_delete}) {
    add_config(cmd);
    cmd->add_option("--filter", dead_filter, "type=,source=,key=,q=,from=,to=,fingerprint=")
        ->required();
    cmd->add_flag("--dry-run", dead_dry_run, "only count the jobs it would touch");
    cmd->add_option("--rate", dead_rate, "at most this many jobs per second (0: no cap)")
        ->check(CLI::NonNegativeNumber);
  }

  auto* dlq = app.add_subcommand("dlq", "dead-letter queue tools");
  dlq->require_subcommand(1);
  std::string type, cursor, id;
  int limit = 50;
  bool all = false;
  auto* list = dlq->add_subcommand("list", "list dead jobs, newest first");
  add_config(list);
  list->add_option("--type", type, "only this job type");
  list->add_option("--limit", limit, "page size")->check(CLI::Range(1, 10000));
  list->add_option("--cursor", cursor, "cursor from the previous page");
  auto* show = dlq->add_subcommand("show", "a dead job with every attempt");
  add_config(show);
  show->add_option("id", id, "job id")->required();
  auto* replay = dlq->add_subcommand("replay", "put dead jobs back in the queue (attempt 1)");
  add_config(replay);
  replay->add_option("id", id, "job id");
  replay->add_flag("--all", all, "every dead job (of --type)");
  replay->add_option("--type", type, "only this job type (with --all)");
  auto* purge = dlq->add_subcommand("purge", "delete dead jobs for good");
  add_config(purge);
  purge->add_option("id", id, "job id");
  purge->add_flag("--all", all, "every dead job (of --type)");
  purge->add_option("--type", type, "only this job type (with --all)");

  auto* version = app.add_subcommand("version", "version, build type, backends");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (*run) return Serve(config_path, Role::kAll);
  if (*ingest) return Serve(config_path, Role::kIngest);
  if (*worker) return Serve(config_path, Role::kWorker);
  if (*check) return Check(config_path);
  if (*send) return Send(config_path, source, data, url);
  if (*stats) return QueueStats(config_path, json);
  if (*pause || *resume) return QueuePause(config_path, pause_type, pause->parsed());
  if (*jobs_list) return JobsList(config_path, job_filter, job_limit, job_cursor, jobs_json);
  if (*jobs_show) return JobsShow(config_path, job_id);
  if (*jobs_retry) return JobsRetry(config_path, job_id);
  if (*jobs_cancel) return JobsCancel(config_path, job_id);
  if (*dead_list) return DeadGroups(config_path, dead_filter);
  if (*dead_replay || *dead_delete) {
    return DeadBulk(config_path, dead_replay->parsed(), dead_filter, dead_dry_run, dead_rate);
  }
  if (*list) return DlqList(config_path, type, limit, cursor);
  if (*show) return DlqShow(config_path, id);
  if (*replay || *purge) {
    if (all == !id.empty()) {
      std::cerr << "give either a job id or --all\n";
      return kExitUsage;
    }
    return *replay ? DlqReplay(config_path, id, all, type) : DlqPurge(config_path, id, all, type);
  }
  if (*version) {
    std::cout << "firebreak " << FIREBREAK_VERSION << " (" << FIREBREAK_BUILD_TYPE << ")\n"
              << "queue backends: sqlite, redis\n"
              << "sources: slack, discord, telegram, github, meta, hmac\n"
              << "handlers: command, url (http)\n";
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace firebreak::cli
