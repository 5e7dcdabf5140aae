#include "ingress/meta_source.h"

#include <string>

#include "common/crypto.h"
#include "common/json_string.h"
#include "ingress/form.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

using simdjson::dom::element;

constexpr char kSignatureHeader[] = "X-Hub-Signature-256";
constexpr char kSignaturePrefix[] = "sha256=";

Status Validate(const SourceConfig& config) {
  if (!config.secret || config.secret->value.empty()) {
    return InvalidArgument("source \"" + config.name + "\": secret (the app secret) is not set");
  }
  if (!config.verify_token || config.verify_token->value.empty()) {
    return InvalidArgument("source \"" + config.name + "\": verify_token is not set");
  }
  return Status::Ok();
}

// The value of `name` in the query of `target`, percent-decoded; nullopt if absent.
std::optional<std::string> QueryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string key;
    if (!AppendDecodedFormComponent(pair.substr(0, eq), key).ok() || key != name) continue;
    std::string value;
    if (eq != std::string_view::npos &&
        !AppendDecodedFormComponent(pair.substr(eq + 1), value).ok()) {
      return std::nullopt;
    }
    return value;
  }
  return std::nullopt;
}

std::string_view StringField(element object, const char* key) {
  std::string_view value;
  if (object[key].get_string().get(value) != simdjson::SUCCESS) return {};
  return value;
}

// The parts every job of one entry shares, as the start of a JSON object.
std::string PayloadPrefix(std::string_view object_kind, element entry) {
  std::string out = "{\"object\":";
  AppendJsonString(out, object_kind);
  out += ",\"entry_id\":";
  element id;
  if (entry["id"].get(id) == simdjson::SUCCESS) {
    out += simdjson::to_string(id);
  } else {
    out += "null";
  }
  return out;
}

class BatchBuilder {
 public:
  explicit BatchBuilder(const std::string& source_name) : name_(source_name) {}

  void Add(std::string key, std::string payload, SearchKeys search_keys) {
    SourceJob job;
    job.dedupe_keys.push_back(name_ + ":" + key);
    job.payload_json = std::move(payload);
    job.headers_json = "{}";
    job.search_keys = search_keys.Take();
    jobs_.push_back(std::move(job));
  }
  std::vector<SourceJob> Take() { return std::move(jobs_); }

 private:
  const std::string& name_;
  std::vector<SourceJob> jobs_;
};

// A WhatsApp job's keys: the business number (the change's metadata.phone_number_id),
// the customer `item` names at `customer` (a message's from, a status's recipient_id),
// and with `contacts` the customers the change lists (contacts[].wa_id, which describe
// its messages, not its statuses).
SearchKeys WhatsAppKeys(element value, const element* item, std::string_view customer,
                        bool contacts) {
  SearchKeys keys;
  keys.AddAt("meta.phone", value, "/metadata/phone_number_id");
  if (item != nullptr) keys.AddAt("meta.wa_id", *item, customer);
  simdjson::dom::array list;
  if (contacts && value["contacts"].get_array().get(list) == simdjson::SUCCESS) {
    for (element contact : list) keys.AddAt("meta.wa_id", contact, "/wa_id");
  }
  return keys;
}

// entry[].changes[]: WhatsApp puts messages and statuses in value; every message and
// status is its own job. A change without either is one job.
void AddChanges(BatchBuilder& batch, std::string_view object_kind, element entry,
                simdjson::dom::array changes) {
  for (element change : changes) {
    std::string prefix = PayloadPrefix(object_kind, entry);
    std::string_view field = StringField(change, "field");
    prefix += ",\"field\":";
    AppendJsonString(prefix, field);
    element value;
    bool split = false;
    const bool has_value = change["value"].get(value) == simdjson::SUCCESS;
    if (has_value) {
      std::string shared = prefix;
      for (const char* part : {"metadata", "contacts"}) {
        element e;
        if (value[part].get(e) == simdjson::SUCCESS) {
          shared += std::string(",\"") + part + "\":" + simdjson::to_string(e);
        }
      }
      simdjson::dom::array items;
      if (value["messages"].get_array().get(items) == simdjson::SUCCESS) {
        for (element message : items) {
          std::string_view id = StringField(message, "id");
          std::string json = simdjson::to_string(message);
          batch.Add(id.empty() ? "sha256:" + Sha256Hex(json) : std::string(id),
                    shared + ",\"message\":" + json + "}", WhatsAppKeys(value, &message, "/from", true));
          split = true;
        }
      }
      if (value["statuses"].get_array().get(items) == simdjson::SUCCESS) {
        for (element status : items) {
          std::string_view id = StringField(status, "id");
          std::string_view state = StringField(status, "status");
          std::string json = simdjson::to_string(status);
          batch.Add(
              id.empty() ? "sha256:" + Sha256Hex(json) : std::string(id) + ":" + std::string(state),
              shared + ",\"status\":" + json + "}", WhatsAppKeys(value, &status, "/recipient_id", false));
          split = true;
        }
      }
    }
    if (!split) {
      std::string json = simdjson::to_string(change);
      SearchKeys keys;
      if (has_value) keys = WhatsAppKeys(value, nullptr, {}, true);
      batch.Add("sha256:" + Sha256Hex(json), prefix + ",\"change\":" + json + "}",
                std::move(keys));
    }
  }
}

// entry[].messaging[]: Messenger / Instagram events, keyed by their message id.
void AddMessaging(BatchBuilder& batch, std::string_view object_kind, element entry,
                  simdjson::dom::array messaging) {
  for (element event : messaging) {
    std::string json = simdjson::to_string(event);
    std::string key;
    for (const char* part : {"message", "postback", "reaction"}) {
      element e;
      if (event[part].get(e) != simdjson::SUCCESS) continue;
      std::string_view mid = StringField(e, "mid");
      if (!mid.empty()) {
        key = std::string(part) + ":" + std::string(mid);
        break;
      }
    }
    if (key.empty()) key = "sha256:" + Sha256Hex(json);
    SearchKeys keys;
    keys.AddAt("meta.user", event, "/sender/id");
    batch.Add(key, PayloadPrefix(object_kind, entry) + ",\"messaging\":" + json + "}",
              std::move(keys));
  }
}

}  // namespace

Result<std::unique_ptr<Source>> MetaSource::Create(const SourceConfig& config) {
  if (Status status = Validate(config); !status.ok()) return status;
  Result<HmacKey> key = HmacKey::Create(HmacAlgorithm::kSha256, config.secret->value);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Source>(new MetaSource(config, std::move(key).value()));
}

SourceDecision MetaSource::Handshake(const IngressRequest& request) const {
  std::optional<std::string> mode = QueryParam(request.Target(), "hub.mode");
  std::optional<std::string> token = QueryParam(request.Target(), "hub.verify_token");
  std::optional<std::string> challenge = QueryParam(request.Target(), "hub.challenge");
  if (!mode || *mode != "subscribe" || !token || !challenge) {
    return SourceDecision::Reject(400,
                                  "expected hub.mode=subscribe, hub.verify_token and "
                                  "hub.challenge");
  }
  if (!ConstantTimeEquals(*token, config().verify_token->value)) {
    return SourceDecision::Reject(403, "invalid verify token");
  }
  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kRespond;
  decision.status = 200;
  decision.content_type = "text/plain";
  decision.body = std::move(*challenge);
  return decision;
}

SourceDecision MetaSource::Handle(const IngressRequest& request) const {
  if (request.Method() == "GET") return Handshake(request);
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  std::string_view signature = request.Header(kSignatureHeader);
  if (signature.empty()) return SourceDecision::Reject(401, "missing signature");
  std::string_view body = request.Body();
  if (!SignatureMatches(signature, kSignaturePrefix, key_.Hex({body}))) {
    return SourceDecision::Reject(401, "invalid signature");
  }
  Result<JsonBody> parsed = ParseJsonBody(body);
  if (!parsed.ok() || !parsed->IsObject()) return SourceDecision::Reject(400, "malformed JSON");
  element root = parsed->root();
  std::string_view object_kind = StringField(root, "object");
  simdjson::dom::array entries;
  if (object_kind.empty() || root["entry"].get_array().get(entries) != simdjson::SUCCESS) {
    return SourceDecision::Reject(400, "expected \"object\" and an \"entry\" array");
  }
  BatchBuilder batch(config().name);
  for (element entry : entries) {
    simdjson::dom::array list;
    if (entry["changes"].get_array().get(list) == simdjson::SUCCESS) {
      AddChanges(batch, object_kind, entry, list);
    }
    if (entry["messaging"].get_array().get(list) == simdjson::SUCCESS) {
      AddMessaging(batch, object_kind, entry, list);
    }
  }
  SourceDecision decision;
  decision.batch = batch.Take();
  if (!search_key_pointers().empty()) {
    // A job's payload is made here from parts of the delivery, so configured pointers read
    // each one parsed (only when configured; the delivery's own document is done with).
    for (SourceJob& job : decision.batch) {
      Result<JsonBody> payload = ParseJsonBody(job.payload_json);
      if (!payload.ok()) continue;
      SearchKeys keys(std::move(job.search_keys));
      search_key_pointers().AddFrom(payload->root(), keys);
      job.search_keys = keys.Take();
    }
  }
  if (decision.batch.empty()) {
    // Nothing to do (e.g. an entry with no events): acknowledged, nothing stored.
    decision.kind = SourceDecision::Kind::kRespond;
    decision.status = 200;
    decision.body = "{\"ok\":true,\"jobs\":0}";
    return decision;
  }
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  return decision;
}

Result<SignedRequest> MetaSource::Sign(const SourceConfig& config, std::string_view body) {
  if (!config.secret || config.secret->value.empty()) {
    return InvalidArgument("source \"" + config.name + "\": secret (the app secret) is not set");
  }
  SignedRequest signed_request;
  signed_request.headers.emplace_back(
      kSignatureHeader,
      kSignaturePrefix + HmacHex(HmacAlgorithm::kSha256, config.secret->value, body));
  signed_request.content_type = "application/json";
  return signed_request;
}

}  // namespace firebreak
