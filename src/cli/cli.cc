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
