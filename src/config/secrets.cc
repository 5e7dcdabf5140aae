// Secret references and their resolution. Values are read here and nowhere else, and
// no message built here ever includes one.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "common/file_util.h"
#include "config/config.h"

namespace firebreak {
namespace {

// A secret is a key or token; a file far larger than that is the wrong file.
constexpr size_t kMaxSecretFileBytes = 1024 * 1024;

Status SecretError(const Secret& secret, const std::string& key_path, const std::string& what) {
  return InvalidArgument(secret.where + ": " + key_path + ": " + what);
}

Status ReadSecretFile(const Secret& secret, const std::string& key_path, std::string& out) {
  Result<std::string> read = ReadSmallFile(secret.ref, kMaxSecretFileBytes);
  if (!read.ok() && read.status().code() == StatusCode::kResourceExhausted) {
    return SecretError(secret, key_path, "secret file \"" + secret.ref + "\" is larger than 1MiB");
  }
  if (!read.ok()) {
    return SecretError(secret, key_path, "cannot read secret file \"" + secret.ref +
                                             "\": " + read.status().message());
  }
  std::string text = std::move(read).value();
  // Files written by editors, `echo` or secret managers usually end in a newline that is
  // not part of the secret.
  size_t end = text.find_last_not_of(" \t\r\n");
  text.resize(end == std::string::npos ? 0 : end + 1);
  if (text.empty())
    return SecretError(secret, key_path, "secret file \"" + secret.ref + "\" is empty");
  out = std::move(text);
  return Status::Ok();
}

Status Resolve(Secret& secret, const std::string& key_path) {
  switch (secret.kind) {
    case Secret::Kind::kEnv: {
      const char* value = std::getenv(secret.ref.c_str());
      if (value == nullptr || *value == '\0') {
        return SecretError(secret, key_path,
                           "environment variable " + secret.ref + " is not set" +
                               (value == nullptr ? "" : " (it is empty)"));
      }
      secret.value = value;
      return Status::Ok();
    }
    case Secret::Kind::kFile:
      return ReadSecretFile(secret, key_path, secret.value);
    case Secret::Kind::kVault:
      return SecretError(secret, key_path,
                         "vault secrets are not supported by this build yet (\"" + secret.ref +
                             "\"); use { env = \"...\" } or { file = \"...\" }, e.g. a file "
                             "rendered by Vault Agent");
  }
  return Internal("unknown secret kind");
}

}  // namespace

std::string Secret::Describe() const {
  switch (kind) {
    case Kind::kEnv:
      return "env " + ref;
    case Kind::kFile:
      return "file " + ref;
    case Kind::kVault:
      return "vault " + ref;
  }
  return "unknown";
}

Status ResolveSourceSecrets(SourceConfig& source, const std::string& path) {
  if (source.secret) {
    if (Status status = Resolve(*source.secret, path + ".secret"); !status.ok()) return status;
  }
  if (source.previous_secret) {
    if (Status status = Resolve(*source.previous_secret, path + ".previous_secret");
        !status.ok()) {
      return status;
    }
  }
  if (source.verify_token) {
    if (Status status = Resolve(*source.verify_token, path + ".verify_token"); !status.ok()) {
      return status;
    }
  }
  if (source.signing_key) {
    if (Status status = Resolve(*source.signing_key, path + ".signing_key"); !status.ok()) {
      return status;
    }
  }
  return Status::Ok();
}

Status ResolveSecrets(Config& config) {
  if (config.server.admin_token) {
    if (Status status = Resolve(*config.server.admin_token, "server.admin_token"); !status.ok()) {
      return status;
    }
  }
  for (size_t i = 0; i < config.server.admin_tokens.size(); ++i) {
    AdminTokenConfig& token = config.server.admin_tokens[i];
    std::string path = "server.admin_tokens[" + std::to_string(i) + "].token";
    if (Status status = Resolve(token.token, path); !status.ok()) return status;
    // A token names its holder (the audit log's actor) and gives one scope: two holders
    // with one token would be one actor with two scopes.
    if (config.server.admin_token && config.server.admin_token->value == token.token.value) {
      return SecretError(token.token, path,
                         "the same token as server.admin_token; every admin token must be "
                         "distinct");
    }
    for (size_t j = 0; j < i; ++j) {
      if (config.server.admin_tokens[j].token.value == token.token.value) {
        return SecretError(token.token, path,
                           "the same token as server.admin_tokens[" + std::to_string(j) +
                               "] (\"" + config.server.admin_tokens[j].name +
                               "\"); every admin token must be distinct");
      }
    }
  }
  for (size_t i = 0; i < config.sources.size(); ++i) {
    Status status = ResolveSourceSecrets(config.sources[i], "sources[" + std::to_string(i) + "]");
    if (!status.ok()) return status;
  }
  for (size_t i = 0; i < config.integrations.size(); ++i) {
    IntegrationConfig& integration = config.integrations[i];
    if (!integration.auth) continue;
    const IntegrationAuth::Kind kind = integration.auth->kind;
    std::string path = "integrations[" + std::to_string(i) + "].auth." +
                       (kind == IntegrationAuth::Kind::kBearer   ? "bearer"
                        : kind == IntegrationAuth::Kind::kHeader ? "header.value"
                                                                 : "path.value");
    if (Status status = Resolve(integration.auth->secret, path); !status.ok()) return status;
  }
  return Status::Ok();
}

}  // namespace firebreak
