#include "cli/common.h"

#include <iostream>

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

Status CheckSupportedByThisBuild(const Config& config) {
  auto unsupported = [](const std::string& where, const std::string& key, const std::string& what) {
    return InvalidArgument(where + ": " + key + ": " + what +
                           " is not supported by this build yet; remove the key");
  };
  if (config.server.admin_token) {
    return unsupported(config.server.admin_token->where, "server.admin_token", "the admin API");
  }
  return Status::Ok();
}

}  // namespace firebreak::cli
