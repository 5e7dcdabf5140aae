// run / ingest / worker / check.
#include <signal.h>

#include <atomic>
#include <map>
#include <optional>
#include <iostream>
#include <thread>

#include "admin/admin_api.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "common/http_util.h"
#include "egress/egress.h"
#include "ingress/server.h"
#include "ingress/source.h"
#include "queue/queue.h"
#include "schedule/scheduler.h"
#include "sidecar/sidecar.h"
#include "store/kv_store.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/tracing.h"
#include "worker/handler.h"
#include "worker/running_jobs.h"
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

// Waits for one of `signals` (blocked in every thread, so only this wait sees them).
int WaitForSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

// [[jobs]] paused (config.h): pauses or resumes `type` in the shared store, with an
// audit entry, logging what it did.
void ApplyPause(Queue& queue, const std::string& type, bool paused, const std::string& why) {
  if (Status st = queue.SetPaused(type, paused); !st.ok()) {
    log::Error("cannot apply [[jobs]] paused", {{"job_type", type}, {"error", st.ToString()}});
    return;
  }
  AuditEntry entry;
  entry.at_ms = SystemClock::Instance().NowMs();
  entry.actor = "config";
  entry.action = paused ? "queue.pause" : "queue.resume";
  entry.target = type;
  entry.detail_json = "{\"reason\":\"" + why + "\"}";
  if (Status st = queue.AppendAudit(entry); !st.ok()) {
    log::Warn("audit entry not stored", {{"error", st.ToString()}});
  }
  log::Info(paused ? "job type paused by the config" : "job type resumed by the config",
            {{"job_type", type}, {"reason", why}});
}

// SIGHUP: reads the config file again and applies what a reload can change, `paused`
// per job type where it differs from `applied` (updated). A file that does not load is
// logged with its file:line:key and changes nothing. Everything else takes a restart.
void Reload(const std::string& path, Queue& queue, std::map<std::string, bool>& applied) {
  Result<Config> reloaded = LoadConfig(path);
  if (!reloaded.ok()) {
    log::Error("config reload failed; nothing changed", {{"error", reloaded.status().message()}});
    return;
  }
  int changed = 0;
  for (const JobConfig& job : reloaded->jobs) {
    auto it = applied.find(job.type);
    if (it == applied.end() || it->second == job.paused) continue;
    ApplyPause(queue, job.type, job.paused, "reload");
    it->second = job.paused;
    ++changed;
  }
  log::Info("config reloaded: only [[jobs]] paused is applied without a restart",
            {{"config", path}, {"paused_changes", changed}});
}

}  // namespace

int Serve(const std::string& config_path, Role role) {
  // Block the shutdown signals before any thread starts, so every thread inherits
  // the mask and only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // SIGHUP reloads (Reload): blocked too, so it waits for the main loop instead of
  // ending the process or a start that waits for its stores.
  sigset_t signals_and_reload = signals;
  sigaddset(&signals_and_reload, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals_and_reload, nullptr);
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
  // A store that is not up yet (compose, a rebooting Redis or PostgreSQL host) is waited
  // for rather than failing the start, as a running process does when it loses one. A
  // SQLite file that cannot be opened is a setup error and fails at once. nullopt: a
  // signal arrived while waiting.
  auto open_waiting = [&signals](const char* what, bool remote, auto open)
      -> std::optional<decltype(open())> {
    auto opened = open();
    std::chrono::milliseconds backoff(200);
    while (!opened.ok() && opened.status().code() == StatusCode::kUnavailable && remote) {
      if (backoff.count() == 200) {
        log::Warn(std::string(what) + " unreachable at start; retrying until it answers",
                  {{"error", opened.status().ToString()}});
      }
      timespec wait{static_cast<time_t>(backoff.count() / 1000),
                    static_cast<long>(backoff.count() % 1000) * 1'000'000};
      if (sigtimedwait(&signals, nullptr, &wait) > 0) {
        log::Info(std::string("stopped before the ") + what + " answered");
        log::Flush();
        return std::nullopt;
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      opened = open();
    }
    return opened;
  };
  auto opened = open_waiting("queue store", config.queue.backend == "redis",
                             [&] { return OpenQueue(config.queue, clock); });
  if (!opened) return kExitOk;
  if (!opened->ok()) {
    log::Error("cannot open the queue", {{"error", opened->status().ToString()}});
    log::Flush();
    return kExitFailure;
  }
  std::unique_ptr<Queue> queue = std::move(*opened).value();
  Metrics metrics;
  if (!config.telemetry.otlp_endpoint.empty()) {
    trace::ExporterOptions options;
    options.endpoint = config.telemetry.otlp_endpoint;
    options.service_name = config.telemetry.service_name;
    trace::StartExport(options, metrics.trace());
    log::Info("exporting traces", {{"otlp_endpoint", RedactUrl(config.telemetry.otlp_endpoint)},
                                   {"service_name", config.telemetry.service_name}});
  }
  // On every way out: sends the spans still queued (bounded by one export timeout) and
  // stops the export thread before `metrics`, which it counts into, goes away.
  struct StopTracing {
    ~StopTracing() { trace::StopExport(); }
  } stop_tracing;
  // The backend logs the shortfall itself (and again if it changes after a reconnect).
  metrics.SetDurabilityDegraded(!queue->DurabilityShortfall().empty());

  // The worker side: egress for integrations and actions, the stores and the sidecar
  // handlers reach them through, then the worker itself.
  RunningJobs running;
  std::unique_ptr<egress::Egress> egress;
  std::unique_ptr<KvStore> sessions;
  std::unique_ptr<KvStore> state;
  std::unique_ptr<Sidecar> sidecar;
  std::unique_ptr<Worker> worker;
  std::unique_ptr<Scheduler> scheduler;
  auto stop_worker_side = [&] {
    if (scheduler) scheduler->Stop();
    if (worker) worker->Stop(std::chrono::milliseconds(0));
    if (sidecar) sidecar->Stop(std::chrono::milliseconds(0));
    if (egress) egress->Stop();
    queue->Close();
    log::Flush();
  };
  if (role != Role::kIngest) {
    egress = std::make_unique<egress::Egress>(config, metrics);
    egress->Start();
    if (!config.worker.sidecar.empty()) {
      auto opened_sessions = open_waiting("sessions store", config.store.sessions == "redis",
                                          [&] { return OpenSessionStore(config, clock); });
      auto opened_state = opened_sessions && opened_sessions->ok()
                              ? open_waiting("state store", config.store.state == "postgres",
                                             [&] { return OpenStateStore(config, clock); })
                              : std::nullopt;
      if (!opened_sessions || (opened_sessions->ok() && !opened_state)) {
        stop_worker_side();
        return kExitOk;  // a signal arrived while waiting
      }
      for (auto* opened_store : {&*opened_sessions, &*opened_state}) {
        if (!opened_store->ok()) {
          log::Error("cannot open a store", {{"error", opened_store->status().ToString()}});
          stop_worker_side();
          return kExitFailure;
        }
      }
      sessions = std::move(*opened_sessions).value();
      state = std::move(*opened_state).value();
      sidecar = std::make_unique<Sidecar>(config, egress.get(), *sessions, *state, metrics,
                                          running, queue.get());
      if (Status st = sidecar->Start(); !st.ok()) {
        log::Error("cannot start the sidecar", {{"error", st.ToString()}});
        sidecar.reset();
        stop_worker_side();
        return kExitFailure;
      }
      log::Info("sidecar listening", {{"url", sidecar->url()},
                                      {"sessions", sessions->Describe()},
                                      {"state", state->Describe()}});
    }
    WorkerContext context;
    context.egress = egress.get();
    context.running = &running;
    context.sidecar_url = sidecar ? sidecar->url() : "";
    worker = std::make_unique<Worker>(config, *queue, metrics, clock, context);
    Status st = worker->Start();
    if (!st.ok()) {
      std::cerr << "config error: " << st.message() << "\n";
      worker.reset();
      stop_worker_side();
      return kExitUsage;
    }
    Worker* w = worker.get();
    queue->SetWakeup([w] { w->Wake(); });
    // [[schedules]]: every worker process enqueues each tick; the queue's dedupe keeps
    // one of them.
    scheduler = std::make_unique<Scheduler>(config, *queue, clock);
    scheduler->Start();
  }

  // The admin API runs where ingress does: on its own listener (server.admin_listen,
  // loopback by default) or, with admin_listen = "ingress", on the ingress listener.
  // Declared before the server but stopped right after it (its queue reads resume on
  // the server's threads), and before egress, whose read-out it awaits.
  std::unique_ptr<AdminApi> admin;
  std::unique_ptr<IngressServer> server;
  const bool admin_on_ingress = config.server.AdminOnIngress();
  if (role != Role::kWorker) {
    server = std::make_unique<IngressServer>(config, std::move(sources), *queue, metrics, clock);
    if (config.server.AdminEnabled()) {
      AdminApiParts parts;
      parts.metrics = &metrics;
      parts.egress = egress.get();
      parts.clock = &clock;
      admin = std::make_unique<AdminApi>(config, *queue, AdminTokens(config.server), parts);
      if (admin_on_ingress) server->SetAdmin(admin.get());
    }
    Status st = server->Start();
    if (st.ok() && admin && !admin_on_ingress) {
      st = admin->Listen(config.server.admin_listen, config.server.read_timeout);
    }
    if (!st.ok()) {
      log::Error("cannot start ingress", {{"error", st.ToString()}});
      server->Stop(std::chrono::milliseconds(0));
      if (admin) admin->Stop();
      stop_worker_side();
      return kExitFailure;
    }
    if (admin) {
      const std::string& at = admin_on_ingress ? config.server.listen : config.server.admin_listen;
      log::Info("admin API on",
                {{"listen", at},
                 {"port", static_cast<int>(admin_on_ingress ? server->port() : admin->port())},
                 {"tokens", static_cast<int64_t>(AdminTokens(config.server).size())}});
      Result<std::pair<std::string, uint16_t>> host = ParseListenAddress(at, true);
      if (host.ok() && !IsLoopbackAddress(host->first)) {
        log::Warn("the admin API listens beyond this machine: keep its tokens strong and "
                  "its port firewalled, or set server.admin_listen to a loopback address",
                  {{"listen", at}});
      }
    }
  } else if (config.server.AdminEnabled()) {
    log::Info("admin API not served by worker processes: it runs with ingress (run, ingest)");
  }
  log::Info("firebreak started", {{"role", RoleName(role)},
                                  {"config", config.file},
                                  {"listen", server ? config.server.listen : std::string("-")},
                                  {"port", server ? static_cast<int>(server->port()) : 0},
                                  {"queue", config.queue.backend},
                                  {"queue_at", DescribeQueueLocation(config.queue)},
                                  {"version", FIREBREAK_VERSION}});

  // [[jobs]] paused = true holds at start; false leaves an operator's pause alone.
  std::map<std::string, bool> applied_pauses;
  for (const JobConfig& job : config.jobs) {
    applied_pauses[job.type] = job.paused;
    if (job.paused) ApplyPause(*queue, job.type, true, "start");
  }
  int sig = 0;
  while ((sig = WaitForSignal(signals_and_reload)) == SIGHUP) {
    Reload(config.file, *queue, applied_pauses);
  }
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
  if (scheduler) scheduler->Stop();
  // Handlers still running may call the sidecar: it stops after the worker, and egress
  // (which actions and the sidecar use) after both.
  if (worker) worker->Stop(config.worker.shutdown_grace);
  if (sidecar) sidecar->Stop(std::chrono::seconds(1));
  if (server) server->Stop(std::chrono::seconds(2));
  if (admin) admin->Stop();
  if (egress) egress->Stop();  // after the admin API, which reads its state
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
