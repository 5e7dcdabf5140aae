// Helpers shared by the CLI commands.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace firebreak::cli {

// Loads and validates the config and resolves its secrets; on error prints the
// message (file, line, key) to stderr and returns nullopt: exit with kExitUsage.
std::optional<Config> LoadForCli(const std::string& path, bool resolve_secrets = true);

// Config that is valid by DESIGN §2 but asks for a feature this build does not have
// yet is refused rather than silently ignored (none at the moment). kInvalidArgument
// naming file/line and key.
Status CheckSupportedByThisBuild(const Config& config);

}  // namespace firebreak::cli
