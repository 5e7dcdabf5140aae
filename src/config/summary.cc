// The human summary printed by `firebreak check`. It shows secret references, never
// values, and masks passwords written inside URLs.
#include <cstdio>
#include <string>

#include "common/http_util.h"
#include "common/units.h"
#include "config/config.h"

namespace firebreak {
namespace {

std::string FormatSize(uint64_t bytes) {
  constexpr uint64_t kKiB = 1024;
  if (bytes >= kKiB * kKiB * kKiB && bytes % (kKiB * kKiB * kKiB) == 0) {
    return std::to_string(bytes / (kKiB * kKiB * kKiB)) + "GiB";
  }
  if (bytes >= kKiB * kKiB && bytes % (kKiB * kKiB) == 0) {
    return std::to_string(bytes / (kKiB * kKiB)) + "MiB";
  }
  if (bytes >= kKiB && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "KiB";
  return std::to_string(bytes) + "B";
}

std::string FormatNumber(double number) {
  char text[64];
  std::snprintf(text, sizeof text, "%g", number);
  return text;
}

const char* JitterName(Jitter jitter) {
  switch (jitter) {
    case Jitter::kNone:
      return "none";
    case Jitter::kFull:
      return "full";
    case Jitter::kEqual:
      return "equal";
  }
  return "unknown";
}

std::string SecretText(const std::optional<Secret>& secret) {
  return secret ? secret->Describe() : "none";
}

std::string Padded(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

void AppendSource(std::string& out, const SourceConfig& source) {
  out += "  " + Padded(source.name, 14) + "kind " + source.KindName() + ", path " +
         source.path + " -> job " + source.job;
  if (source.kind == SourceKind::kDiscord) {
    out += ", public_key " + source.public_key.substr(0, 8) + "...";
  } else {
    out += ", secret " + SecretText(source.secret);
  }
  if (source.kind == SourceKind::kMeta) out += ", verify_token " + SecretText(source.verify_token);
  if (source.kind == SourceKind::kHmac && source.preset == nullptr) {
    const SignatureScheme& scheme = source.scheme;
    out += scheme.mode == SignatureScheme::Mode::kToken
               ? ", token in " + (scheme.token_field.empty() ? "header " + scheme.header
                                                              : "field " + scheme.token_field)
               : ", header " + scheme.header + ", prefix \"" + scheme.prefix + "\", algorithm " +
                     scheme.algorithm + ", signed \"" + scheme.signed_template + "\"";
  }
  if (source.kind == SourceKind::kHmac) {
    std::string dedupe;
    for (const std::string& entry : source.dedupe) dedupe += (dedupe.empty() ? "" : " | ") + entry;
    out += ", dedupe " + (dedupe.empty() ? std::string("body") : dedupe);
    if (source.previous_secret) out += ", previous_secret " + SecretText(source.previous_secret);
  }
  if (!source.headers.empty()) {
    out += ", headers";
    for (const std::string& header : source.headers) out += " " + header;
  }
  out += "\n";
}

void AppendJob(std::string& out, const JobConfig& job) {
  out += "  " + Padded(job.type, 14) + "handler ";
  if (!job.handler.command.empty()) {
    out += "command [";
    for (size_t i = 0; i < job.handler.command.size(); ++i) {
      out += (i > 0 ? " " : "") + job.handler.command[i];
    }
    out += "]";
  } else {
    out += "url " + RedactUrl(job.handler.url);
    if (!job.handler.ca_file.empty()) out += " (ca_file " + job.handler.ca_file + ")";
  }
  const BackoffPolicy& backoff = job.backoff;
  out += ", concurrency " + std::to_string(job.concurrency) + ", timeout " +
         FormatDuration(job.timeout) + ", max_attempts " + std::to_string(job.max_attempts) +
         ", backoff " + FormatDuration(backoff.base) + " x" + FormatNumber(backoff.factor) +
         " up to " + FormatDuration(backoff.max) + " jitter " + JitterName(backoff.jitter);
  if (!job.key.empty()) {
    out += ", key " + job.key + " (" + std::to_string(job.concurrency_per_key) + " per key)";
  }
  if (job.global_concurrency > 0) {
    out += ", global_concurrency " + std::to_string(job.global_concurrency);
  }
  if (job.throttle_per_key > 0) {
    out += ", throttle " + std::to_string(job.throttle_per_key) + " per key per " +
           FormatDuration(job.throttle_period);
  }
  if (job.debounce_period.count() > 0) {
    out += ", debounce " + job.debounce_key + " " + FormatDuration(job.debounce_period);
  }
  if (job.paused) out += ", paused";
  if (job.batch.enabled()) {
    out += ", batch max " + std::to_string(job.batch.max) + " wait " +
           FormatDuration(job.batch.wait) + " (concurrency = batch runs)";
  }
  out += "\n";
}

void AppendIntegration(std::string& out, const IntegrationConfig& integration) {
  out += "  " + Padded(integration.name, 14) + RedactUrl(integration.base_url) + ", auth ";
  if (!integration.auth) {
    out += "none";
  } else if (integration.auth->kind == IntegrationAuth::Kind::kBearer) {
    out += "bearer " + integration.auth->secret.Describe();
  } else if (integration.auth->kind == IntegrationAuth::Kind::kHeader) {
    out += "header " + integration.auth->header_name + " " + integration.auth->secret.Describe();
  } else {
    out += "path " + integration.auth->path_prefix + "<" + integration.auth->secret.Describe() + ">";
  }
  const IntegrationRetryConfig& retry = integration.retry;
  out += ", timeout " + FormatDuration(integration.timeout) + ", max_concurrency " +
         std::to_string(integration.max_concurrency) + " (queue " +
         std::to_string(integration.max_queue) + "), retry " + std::to_string(retry.attempts) +
         " attempts [";
  for (size_t i = 0; i < retry.backoff.size(); ++i) {
    out += (i > 0 ? " " : "") + FormatDuration(retry.backoff[i]);
  }
  const CircuitBreakerConfig& breaker = integration.breaker;
  out += std::string("]") + (retry.jitter ? " jittered" : "") + ", breaker opens at " +
         FormatNumber(breaker.failure_rate * 100) +
         "% failures of >= " + std::to_string(breaker.min_calls) + " calls in " +
         FormatDuration(breaker.window) + " for " + FormatDuration(breaker.open_for) +
         ", rate limit ";
  if (integration.rate_limit) {
    out += integration.rate_limit->rate + " burst " + std::to_string(integration.rate_limit->burst);
  } else {
    out += "none";
  }
  out += "\n";
}

}  // namespace

std::string Summarize(const Config& config) {
  const ServerConfig& server = config.server;
  const QueueConfig& queue = config.queue;
  const WorkerConfig& worker = config.worker;
  const StoreConfig& store = config.store;
  const TelemetryConfig& telemetry = config.telemetry;

  std::string out = "config     " + config.file + "\n";
  out += "server     listen " + server.listen + ", threads " +
         (server.threads == 0 ? std::string("auto") : std::to_string(server.threads)) +
         ", max_body " + FormatSize(server.max_body) + ", read_timeout " +
         FormatDuration(server.read_timeout) + "\n";
  out += "admin      ";
  if (server.AdminEnabled()) {
    out += "on at " +
           (server.AdminOnIngress() ? server.listen + " (the ingress listener)"
                                    : server.admin_listen);
    if (server.admin_token) out += ", token " + server.admin_token->Describe();
    for (const AdminTokenConfig& token : server.admin_tokens) {
      out += ", token \"" + token.name + "\" (" + AdminScopeName(token.scope) + ") " +
             token.token.Describe();
    }
    out += "\n";
  } else {
    out += "off (no admin_token or admin_tokens)\n";
  }
  out += "queue      " + queue.backend + " " +
         (queue.backend == "sqlite" ? queue.path : RedactUrl(queue.url)) + ", durability " +
         (queue.durability == Durability::kFsync ? "fsync" : "process") + ", max_depth " +
         std::to_string(queue.max_depth) + ", dedupe_ttl " + FormatDuration(queue.dedupe_ttl) +
         ", timeout " + FormatDuration(queue.timeout) +
         (queue.backend == "sqlite" ? ", cache_size " + FormatSize(queue.cache_size) : "") + "\n";
  out += "worker     max_in_flight " + std::to_string(worker.max_in_flight) + ", shutdown_grace " +
         FormatDuration(worker.shutdown_grace) + ", sidecar " + worker.sidecar + "\n";
  out += "store      sessions " + store.sessions +
         (store.sessions == "redis" ? " " + RedactUrl(store.sessions_url) : "") + ", state " +
         store.state + (store.state == "postgres" ? " " + RedactUrl(store.state_url) : "") +
         ", timeout " + FormatDuration(store.timeout) + "\n";
  out += "telemetry  log " + telemetry.log_format + "/" + telemetry.log_level + ", otlp " +
         (telemetry.otlp_endpoint.empty() ? "off" : RedactUrl(telemetry.otlp_endpoint)) +
         ", service " + telemetry.service_name + "\n";

  out += "sources (" + std::to_string(config.sources.size()) + ")\n";
  for (const SourceConfig& source : config.sources) AppendSource(out, source);
  out += "jobs (" + std::to_string(config.jobs.size()) + ")\n";
  for (const JobConfig& job : config.jobs) AppendJob(out, job);
  out += "integrations (" + std::to_string(config.integrations.size()) + ")\n";
  for (const IntegrationConfig& integration : config.integrations) {
    AppendIntegration(out, integration);
  }
  return out;
}

}  // namespace firebreak
