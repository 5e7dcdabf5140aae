#include "cli/common.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/cli.h"
#include "common/clock.h"
#include "telemetry/log.h"

namespace firebreak::cli {

std::optional<Config> LoadForCli(const std::string& path, bool resolve_secrets) {
  auto config = LoadConfig(path);
  if (!config.ok()) {
    std::cerr << "config error: " << config.status().message() << "\n";
    return std::nullopt;
  }
  if (Status st = CheckSupportedByThisBuild(*config); !st.ok()) {
    std::cerr << "config error: " << st.message() << "\n";
    return std::nullopt;
  }
  if (resolve_secrets) {
    Status st = ResolveSecrets(*config);
    if (!st.ok()) {
      std::cerr << "config error: " << st.message() << "\n";
      return std::nullopt;
    }
  }
  return std::move(config).value();
}

Status CheckSupportedByThisBuild(const Config& /*config*/) {
  // Every key of DESIGN §2 is built now (the admin API and OTLP export were the last).
  // A key parsed before its feature exists is refused here, naming file, line and key.
  return Status::Ok();
}

std::unique_ptr<Queue> OpenForTools(const std::string& config_path, int& exit_code,
                                    Config* loaded) {
  log::SendToStderr();  // e.g. a durability warning must not corrupt --json output
  auto config = LoadForCli(config_path, /*resolve_secrets=*/false);
  if (!config) {
    exit_code = kExitUsage;
    return nullptr;
  }
  if (loaded != nullptr) *loaded = *config;
  auto queue = OpenQueue(config->queue, SystemClock::Instance());
  if (!queue.ok()) {
    std::cerr << "cannot open the queue: " << queue.status().message() << "\n";
    exit_code = kExitFailure;
    return nullptr;
  }
  return std::move(queue).value();
}

std::string CliActor() {
  const char* user = std::getenv("USER");
  if (user != nullptr && *user != '\0') return std::string("cli:") + user;
  return "cli:uid" + std::to_string(getuid());
}

}  // namespace firebreak::cli
