// Helpers shared by the CLI commands.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "queue/queue.h"

namespace firebreak::cli {

// Loads and validates the config and resolves its secrets; on error prints the
// message (file, line, key) to stderr and returns nullopt: exit with kExitUsage.
std::optional<Config> LoadForCli(const std::string& path, bool resolve_secrets = true);

// Config that is valid by DESIGN §2 but asks for a feature this build does not have
// yet is refused rather than silently ignored (none at the moment). kInvalidArgument
// naming file/line and key.
Status CheckSupportedByThisBuild(const Config& config);

// Loads the config (secrets are not needed) and opens its queue, for the tools that
// work on the store directly (queue, dlq, jobs, dead). On failure prints why and sets
// `exit_code` (usage error for a bad config, failure for the store). `loaded`, when
// given, receives the config.
std::unique_ptr<Queue> OpenForTools(const std::string& config_path, int& exit_code,
                                    Config* loaded = nullptr);

// Who the audit log names for a change made from this shell: "cli:<user>".
std::string CliActor();

}  // namespace firebreak::cli
