// `firebreak send`: sign a body exactly as the platform would and POST it to the
// running ingress — the try-it path of the quick start and a smoke test.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/http_client.h"
#include "common/crypto.h"
#include "config/webhook_presets.h"
#include "ingress/scheme_source.h"
#include "ingress/source.h"

namespace firebreak::cli {
namespace {

// A realistic sample event for sources that have one, unique on every call.
std::string SampleBody(const SourceConfig& source, int64_t now) {
  if (source.preset != nullptr) return ExpandSample(source.preset->sample_body, now);
  std::string id = RandomHex(8);
  if (source.kind == SourceKind::kSlack) {
    return "{\"token\":\"sample\",\"team_id\":\"T0001\",\"api_app_id\":\"A0001\","
           "\"type\":\"event_callback\",\"event_id\":\"Ev" +
           id + "\",\"event_time\":" + std::to_string(now) +
           ",\"event\":{\"type\":\"app_mention\",\"user\":\"U0001\",\"channel\":\"C0001\","
           "\"text\":\"<@U0BOT> hello from firebreak send\",\"ts\":\"" +
           std::to_string(now) + ".000100\"}}";
  }
  // Ids from the token's first 12 hex digits: numeric where the platform's are numbers.
  const std::string number = std::to_string(std::stoull(id.substr(0, 12), nullptr, 16));
  switch (source.kind) {
    case SourceKind::kTelegram:
      return "{\"update_id\":" + number + ",\"message\":{\"message_id\":1,\"date\":" +
             std::to_string(now) +
             ",\"chat\":{\"id\":1001,\"type\":\"private\"},\"from\":{\"id\":1001,"
             "\"is_bot\":false,\"first_name\":\"Sample\"},\"text\":\"hello from firebreak "
             "send\"}}";
    case SourceKind::kGithub:
      return "{\"ref\":\"refs/heads/main\",\"after\":\"" + id + id +
             "\",\"repository\":{\"id\":1,\"full_name\":\"octo/sample\"},\"head_commit\":{"
             "\"message\":\"hello from firebreak send\"},\"sender\":{\"login\":\"octocat\"}}";
    case SourceKind::kMeta:  // a WhatsApp Cloud API delivery with two messages
      return "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1001\","
             "\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":"
             "\"whatsapp\",\"metadata\":{\"phone_number_id\":\"2002\"},\"messages\":["
             "{\"id\":\"wamid." + id + "a\",\"from\":\"15550001\",\"timestamp\":\"" +
             std::to_string(now) +
             "\",\"type\":\"text\",\"text\":{\"body\":\"hello from firebreak send\"}},"
             "{\"id\":\"wamid." + id + "b\",\"from\":\"15550001\",\"timestamp\":\"" +
             std::to_string(now) + "\",\"type\":\"text\",\"text\":{\"body\":\"and again\"}}"
             "]}}]}]}";
    case SourceKind::kDiscord:
      return "{\"type\":2,\"id\":\"" + number + "\",\"application_id\":\"1\","
             "\"token\":\"sample\",\"data\":{\"name\":\"hello\",\"type\":1},"
             "\"channel_id\":\"2\",\"member\":{\"user\":{\"id\":\"3\","
             "\"username\":\"sample\"}}}";
    default:
      return "{\"id\":\"" + id + "\",\"text\":\"hello from firebreak send\"}";
  }
}

std::string ListenUrl(const std::string& listen) {
  std::string host = listen;
  // A wildcard listener is reached on loopback.
  if (host.rfind("0.0.0.0:", 0) == 0) host = "127.0.0.1:" + host.substr(8);
  if (host.rfind("[::]:", 0) == 0) host = "[::1]:" + host.substr(5);
  return "http://" + host;
}

}  // namespace

int Send(const std::string& config_path, const std::string& source_name, const std::string& data,
         const std::string& url) {
  // Only the source's own secrets: trying a bot by hand should not need its API tokens.
  auto config = LoadForCli(config_path, /*resolve_secrets=*/false);
  if (!config) return kExitUsage;
  SourceConfig* source = nullptr;
  for (size_t i = 0; i < config->sources.size() && source == nullptr; ++i) {
    if (config->sources[i].name != source_name) continue;
    source = &config->sources[i];
    if (Status st = ResolveSourceSecrets(*source, "sources[" + std::to_string(i) + "]"); !st.ok()) {
      std::cerr << "config error: " << st.message() << "\n";
      return kExitUsage;
    }
  }
  if (!source) {
    std::cerr << "no source named \"" << source_name << "\" in " << config_path << "\n";
    return kExitUsage;
  }
  int64_t now = SystemClock::Instance().NowSeconds();
  std::string body;
  if (data.empty()) {
    body = SampleBody(*source, now);
  } else if (data[0] == '@') {
    std::ifstream in(data.substr(1), std::ios::binary);
    if (!in) {
      std::cerr << "cannot read " << data.substr(1) << "\n";
      return kExitUsage;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    body = buf.str();
  } else {
    body = data;
  }
  const std::string target = (url.empty() ? ListenUrl(config->server.listen) : url) + source->path;
  auto signed_request = SignRequest(*source, body, now, target);
  if (!signed_request.ok()) {
    std::cerr << "cannot sign for source \"" << source_name
              << "\": " << signed_request.status().message() << "\n";
    return kExitUsage;
  }
  HttpRequest request;
  request.method = "POST";
  request.url = target;
  // With a public_url the signature covers that URL; the request still goes to `target`.
  if (!signed_request->url.empty()) {
    request.url = target + signed_request->url.substr(signed_request->url.find('?') ==
                                                              std::string::npos
                                                          ? signed_request->url.size()
                                                          : signed_request->url.find('?'));
  }
  request.headers = signed_request->headers;
  request.headers.emplace_back("Content-Type", signed_request->content_type);
  request.body = signed_request->body.value_or(body);
  auto response = HttpCall(request);
  if (!response.ok()) {
    std::cerr << "POST " << request.url << ": " << response.status().message() << "\n";
    return kExitFailure;
  }
  std::cout << "POST " << request.url << " -> " << response->status << " " << response->body
            << "\n";
  return response->status >= 200 && response->status < 300 ? kExitOk : kExitFailure;
}

}  // namespace firebreak::cli
