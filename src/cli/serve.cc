// run / ingest / worker / check.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "cli/common.h"
#include "ingress/server.h"
#include "ingress/source.h"
#include "queue/queue.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "worker/handler.h"
#include "worker/worker.h"

namespace firebreak::cli {
namespace {

Result<std::vector<std::unique_ptr<Source>>> BuildSources(const Config& config) {
  std::vector<std::unique_ptr<Source>> sources;
  for (const SourceConfig& sc : config.sources) {
    auto source = MakeSource(sc, SystemClock::Instance());
    if (!source.ok()) {
      return InvalidArgument(sc.where + ": sources \"" + sc.name +
                             "\": " + source.status().message());
    }
    sources.push_back(std::move(source).value());
  }
  return sources;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAll:
      return "run";
    case Role::kIngest:
      return "ingest";
    case Role::kWorker:
      return "worker";
  }
  return "run";
}

// Waits for SIGINT/SIGTERM (blocked in every thread, so only this wait sees them).
int WaitForSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

}  // namespace

int Serve(const std::string& config_path, Role role) {
  // Block the shutdown signals before any thread starts, so every thread inherits
  // the mask and only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto loaded = LoadForCli(config_path);
  if (!loaded) return kExitUsage;
  const Config config = std::move(*loaded);
  log::Init(config.telemetry.log_format, config.telemetry.log_level);

  std::vector<std::unique_ptr<Source>> sources;
  if (role != Role::kWorker) {
    auto built = BuildSources(config);
    if (!built.ok()) {
      std::cerr << "config error: " << built.status().message() << "\n";
      return kExitUsage;
    }
    sources = std::move(built).value();
  }

  Clock& clock = SystemClock::Instance();
  auto opened = OpenQueue(config.queue, clock);
  // A Redis that is not up yet (compose, a rebooting Redis host) is waited for rather
  // than failing the start, as a running process does when it loses Redis. A SQLite
  // file that cannot be opened is a setup error and fails at once.
  std::chrono::milliseconds backoff(200);
  while (!opened.ok() && opened.status().code() == StatusCode::kUnavailable &&
         config.queue.backend == "redis") {
    if (backoff.count() == 200) {
      log::Warn("queue store unreachable at start; retrying until it answers",
                {{"error", opened.status().ToString()}});
    }
    timespec wait{static_cast<time_t>(backoff.count() / 1000),
                  static_cast<long>(backoff.count() % 1000) * 1'000'000};
    if (sigtimedwait(&signals, nullptr, &wait) > 0) {
      log::Info("stopped before the queue store answered");
      log::Flush();
      return kExitOk;
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    opened = OpenQueue(config.queue, clock);
  }
  if (!opened.ok()) {
    log::Error("cannot open the queue", {{"error", opened.status().ToString()}});
    log::Flush();
    return kExitFailure;
  }
  std::unique_ptr<Queue> queue = std::move(opened).value();
  Metrics metrics;
  // The backend logs the shortfall itself (and again if it changes after a reconnect).
  metrics.SetDurabilityDegraded(!queue->DurabilityShortfall().empty());

  std::unique_ptr<Worker> worker;
  if (role != Role::kIngest) {
    worker = std::make_unique<Worker>(config, *queue, metrics, clock);
    Status st = worker->Start();
    if (!st.ok()) {
      std::cerr << "config error: " << st.message() << "\n";
      queue->Close();
      return kExitUsage;
    }
    Worker* w = worker.get();
    queue->SetWakeup([w] { w->Wake(); });
  }

  std::unique_ptr<IngressServer> server;
  if (role != Role::kWorker) {
    server = std::make_unique<IngressServer>(config, std::move(sources), *queue, metrics, clock);
    Status st = server->Start();
    if (!st.ok()) {
      log::Error("cannot start ingress", {{"error", st.ToString()}});
      if (worker) worker->Stop(std::chrono::milliseconds(0));
      queue->Close();
      log::Flush();
      return kExitFailure;
    }
  }
  log::Info("firebreak started", {{"role", RoleName(role)},
                                  {"config", config.file},
                                  {"listen", server ? config.server.listen : std::string("-")},
                                  {"port", server ? static_cast<int>(server->port()) : 0},
                                  {"queue", config.queue.backend},
                                  {"queue_at", DescribeQueueLocation(config.queue)},
                                  {"version", FIREBREAK_VERSION}});

  int sig = WaitForSignal(signals);
  log::Info("shutting down",
            {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
             {"grace_ms", static_cast<int64_t>(config.worker.shutdown_grace.count())}});
  // A second signal exits at once: in-flight jobs keep their lease and are delivered
  // again when it expires, so nothing accepted is lost.
  std::thread second([signals] {
    WaitForSignal(signals);
    log::Warn("second signal: exiting now");
    log::Flush();
    std::_Exit(kExitFailure);
  });
  second.detach();

  if (server) server->StopAccepting();
  if (worker) worker->Stop(config.worker.shutdown_grace);
  if (server) server->Stop(std::chrono::seconds(2));
  queue->Close();
  log::Info("stopped");
  log::Flush();
  return kExitOk;
}

int Check(const std::string& config_path) {
  auto config = LoadForCli(config_path);
  if (!config) return kExitUsage;
  auto sources = BuildSources(*config);
  if (!sources.ok()) {
    std::cerr << "config error: " << sources.status().message() << "\n";
    return kExitUsage;
  }
  boost::asio::io_context io;  // handlers are built, not run: nothing is started
  for (const JobConfig& job : config->jobs) {
    auto handler = MakeHandler(job, config->worker.sidecar, io);
    if (!handler.ok()) {
      std::cerr << "config error: " << job.where << ": jobs \"" << job.type
                << "\": " << handler.status().message() << "\n";
      return kExitUsage;
    }
  }
  std::cout << Summarize(*config) << "config ok\n";
  return kExitOk;
}

}  // namespace firebreak::cli
