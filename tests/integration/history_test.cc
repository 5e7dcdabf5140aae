// Issue 15 through the real binary: 1,000 events across three sources (Slack, GitHub,
// a generic HMAC CRM), then an operator's questions answered by the admin API —
// find one user's events by key, see every attempt and the outbound call of its
// action, replay 200 dead jobs by filter while traffic flows, read the audit — and the
// security around it: a read token gets 403 on every mutation, and no answer contains
// a configured secret.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSlackSecret[] = "history-slack-signing-secret";
constexpr char kGithubSecret[] = "history-github-webhook-secret";
constexpr char kCrmSecret[] = "history-crm-hmac-secret";
constexpr char kAdminToken[] = "history-admin-token-0123456789";
constexpr char kOpsToken[] = "history-operate-token-0123456789";
constexpr char kReadToken[] = "history-read-token-0123456789";
constexpr char kApiKey[] = "history-upstream-api-key";

constexpr int kSlackEvents = 400;
constexpr int kGithubEvents = 300;
constexpr int kCrmEvents = 300;
constexpr int kCrmBroken = 200;  // dead-lettered while the bot is broken
constexpr int kUsers = 50;

// Slack events get an action (a chat.postMessage-like call); a CRM event marked
// "bad" is rejected (no retry) while the file `broken` exists: the bug, then the fix.
constexpr char kBot[] = R"PY(
import json, os, sys
broken = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    p = env["payload"]
    out = {"id": env["id"], "ok": True}
    if env["type"] == "slack.event":
        out["actions"] = [{"integration": "api", "method": "POST", "path": "/chat.postMessage",
                           "json": {"channel": p["event"]["channel"], "text": "ok"}}]
    elif env["type"] == "crm.event" and p.get("bad") and os.path.exists(broken):
        out = {"id": env["id"], "ok": False, "error": "CRM record " + p["customer"] + " is malformed",
               "retry": False}
    print(json.dumps(out), flush=True)
)PY";

// Reads a streamed answer (GET `path` with a bearer token) until `done` says what came
// holds enough, or `listen_for` has passed; then hangs up. Returns what an EventSource
// would have received by then, headers included.
std::string ReadStream(uint16_t port, const std::string& path, const std::string& token,
                       const std::function<bool(const std::string&)>& done,
                       milliseconds listen_for) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Accept: text/event-stream\r\nAuthorization: Bearer " + token +
                              "\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  timeval slice{0, 100'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice);
  std::string out;
  const auto end = std::chrono::steady_clock::now() + listen_for;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    if (done(out)) break;
  }
  close(fd);
  return out;
}

class HistoryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    port_ = FreePort();
    admin_port_ = FreePort();
    for (const auto& [name, value] :
         std::map<std::string, std::string>{{"slack", kSlackSecret}, {"github", kGithubSecret},
                                            {"crm", kCrmSecret}, {"admin", kAdminToken},
                                            {"ops", kOpsToken}, {"read", kReadToken},
                                            {"api", kApiKey}}) {
      dir_.Write(name + ".secret", value);
    }
    dir_.Write("bot.py", kBot);
    dir_.Write("broken", "1");
    auto secret = [&](const std::string& name) {
      return "{ file = \"" + dir_.File(name + ".secret") + "\" }";
    };
    config_ = dir_.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) + R"("
threads = 2
admin_token = )" + secret("admin") + R"(
admin_listen = "127.0.0.1:)" + std::to_string(admin_port_) + R"("
[[server.admin_tokens]]
name = "ops"
token = )" + secret("ops") + R"(
scope = "operate"
[[server.admin_tokens]]
name = "viewer"
token = )" + secret("read") + R"(
scope = "read"
)" + backend_->QueueToml("durability = \"process\"\n") + R"(
[worker]
sidecar = "127.0.0.1:0"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = )" + secret("slack") + R"(
job = "slack.event"
[[sources]]
name = "github"
kind = "github"
path = "/hooks/github"
secret = )" + secret("github") + R"(
job = "github.event"
[[sources]]
name = "crm"
kind = "hmac"
path = "/hooks/crm"
secret = )" + secret("crm") + R"(
dedupe = "/id"
search_keys = ["/customer"]
job = "crm.event"
[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                     dir_.File("broken") + R"("] }
concurrency = 8
[[jobs]]
type = "github.event"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                     dir_.File("broken") + R"("] }
concurrency = 4
[[jobs]]
type = "crm.event"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                     dir_.File("broken") + R"("] }
concurrency = 4
[[integrations]]
name = "api"
base_url = ")" + upstream_.Url() + R"("
auth = { bearer = )" + secret("api") + R"( }
)");
  }

  Result<HttpResponse> Admin(const std::string& method, const std::string& path,
                             const std::string& token, const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.url = "http://127.0.0.1:" + std::to_string(admin_port_) + "/admin/api/v1" + path;
    req.headers = {{"Authorization", "Bearer " + token}};
    if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
    Result<HttpResponse> res = HttpCall(req);
    if (res.ok()) answers_.push_back(res->body);
    return res;
  }
  nlohmann::json AdminJson(const std::string& path, const std::string& token = kAdminToken) {
    Result<HttpResponse> res = Admin("GET", path, token);
    if (!res.ok() || res->status != 200) {
      ADD_FAILURE() << "GET " << path << ": "
                    << (res.ok() ? std::to_string(res->status) + " " + res->body
                                 : res.status().ToString());
      return nlohmann::json();
    }
    return nlohmann::json::parse(res->body, nullptr, false);
  }

  int PostSlack(int n) {
    const std::string body = R"({"type":"event_callback","team_id":"T0HIST","event_id":"EvH)" +
                             std::to_string(n) + R"(","event":{"type":"message","user":"U)" +
                             std::to_string(n % kUsers) + R"(","channel":"C)" +
                             std::to_string(n % 7) + R"(","text":"hello )" + std::to_string(n) +
                             R"("}})";
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/slack";
    req.headers = SlackHeaders(kSlackSecret, body, NowSeconds(), "application/json");
    req.body = body;
    Result<HttpResponse> res = HttpCall(req);
    return res.ok() ? res->status : 0;
  }
  int PostGithub(int n) {
    const std::string body = R"({"ref":"refs/heads/main","after":"g)" + std::to_string(n) +
                             R"(","repository":{"full_name":"acme/bot"},"sender":{"login":"dev)" +
                             std::to_string(n % 5) + R"("}})";
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/github";
    req.headers = {{"Content-Type", "application/json"},
                   {"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(kGithubSecret, body)},
                   {"X-GitHub-Event", "push"},
                   {"X-GitHub-Delivery", "hist-" + std::to_string(n)}};
    req.body = body;
    Result<HttpResponse> res = HttpCall(req);
    return res.ok() ? res->status : 0;
  }
  int PostCrm(int n) {
    const std::string body = R"({"id":"crm-)" + std::to_string(n) + R"(","customer":"cus_)" +
                             std::to_string(n % 20) + R"(","bad":)" +
                             (n < kCrmBroken ? "true" : "false") + "}";
    Result<HttpResponse> res = PostHmacSigned(port_, "/hooks/crm", kCrmSecret, body);
    return res.ok() ? res->status : 0;
  }

  // Dead jobs and jobs still to run, from the admin API.
  std::pair<int64_t, int64_t> DeadAndPending() {
    nlohmann::json queues = AdminJson("/queues");
    int64_t dead = 0, pending = 0;
    if (!queues.is_object()) return {-1, -1};
    for (const auto& row : queues["items"]) {
      dead += row["dead"].get<int64_t>();
      pending += row["ready"].get<int64_t>() + row["delayed"].get<int64_t>() +
                 row["in_flight"].get<int64_t>();
    }
    return {dead, pending};
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  UpstreamServer upstream_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::string config_;
  std::vector<std::string> answers_;  // every admin answer body, for the secret grep
};

TEST_P(HistoryTest, OperatorFindsReplaysAndAuditsThroughTheAdminApi) {
  FirebreakProcess server("run", config_, dir_.File("firebreak.log"), port_);
  ASSERT_TRUE(server.Start()) << server.Log();

  // 1,000 events over three sources, interleaved.
  for (int i = 0; i < kSlackEvents; ++i) ASSERT_EQ(PostSlack(i), 200) << i;
  for (int i = 0; i < kGithubEvents; ++i) ASSERT_EQ(PostGithub(i), 200) << i;
  for (int i = 0; i < kCrmEvents; ++i) ASSERT_EQ(PostCrm(i), 200) << i;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [dead, pending] = DeadAndPending();
        return dead == kCrmBroken && pending == 0;
      },
      milliseconds(120'000)))
      << DeadAndPending().first << " dead, " << DeadAndPending().second << " pending\n"
      << server.Log().substr(0, 4000);

  // One user's events, by key: exactly the ones sent for U7, each with its attempt and
  // the outbound call of its action.
  nlohmann::json found = AdminJson("/jobs?key=slack.user:U7&limit=100");
  ASSERT_TRUE(found.is_object());
  std::set<std::string> texts;
  ASSERT_EQ(found["items"].size(), static_cast<size_t>(kSlackEvents / kUsers));
  for (const auto& item : found["items"]) {
    EXPECT_EQ(item["state"], "succeeded");
    EXPECT_EQ(item["source"], "slack");
    nlohmann::json job = AdminJson("/jobs/" + item["id"].get<std::string>());
    ASSERT_TRUE(job.is_object());
    texts.insert(job["payload"]["event"]["text"].get<std::string>());
    ASSERT_EQ(job["attempts"].size(), 1u) << job.dump();
    EXPECT_EQ(job["attempts"][0]["outcome"], "succeeded");
    ASSERT_EQ(job["actions"].size(), 1u) << job.dump();
    const auto& action = job["actions"][0];
    EXPECT_EQ(action["type"], "action:api");
    EXPECT_EQ(action["parent_id"], item["id"]);
    EXPECT_EQ(action["state"], "succeeded");
    ASSERT_GE(action["attempts"].size(), 1u);
    EXPECT_EQ(action["payload"]["path"], "/chat.postMessage") << action.dump();
    EXPECT_EQ(action["trace_id"], item["trace_id"]);  // one trace from webhook to call
  }
  EXPECT_EQ(texts.size(), static_cast<size_t>(kSlackEvents / kUsers));
  EXPECT_TRUE(texts.count("hello 7"));
  // The other kinds' keys and the trace id find their jobs too.
  nlohmann::json repo = AdminJson("/jobs?key=github.repo:acme/bot&limit=1");
  EXPECT_EQ(repo["total_estimate"], kGithubEvents);
  nlohmann::json customer = AdminJson("/jobs?key=customer:cus_3&state=dead");
  EXPECT_EQ(customer["items"].size(), static_cast<size_t>(kCrmBroken / 20));
  const std::string trace = found["items"][0]["trace_id"];
  nlohmann::json by_trace = AdminJson("/jobs?trace_id=" + trace);
  EXPECT_EQ(by_trace["items"].size(), 2u);  // the event and its action

  // The dead-letter queue, grouped: one problem, 200 jobs.
  nlohmann::json groups = AdminJson("/dead?group=fingerprint");
  ASSERT_EQ(groups["items"].size(), 1u) << groups.dump();
  EXPECT_EQ(groups["items"][0]["count"], kCrmBroken);
  const std::string fingerprint = groups["items"][0]["fingerprint"];

  // The bot is fixed; replay the 200 by filter while traffic flows: a dry run first.
  std::filesystem::remove(dir_.File("broken"));
  const std::string filter =
      R"({"filter":{"type":"crm.event","fingerprint":")" + fingerprint + R"("})";
  Result<HttpResponse> dry =
      Admin("POST", "/dead/replay", kOpsToken, filter + R"(,"dry_run":true})");
  ASSERT_TRUE(dry.ok());
  ASSERT_EQ(dry->status, 202) << dry->body;
  const std::string dry_id = nlohmann::json::parse(dry->body)["id"];
  ASSERT_TRUE(WaitFor([&] { return AdminJson("/operations/" + dry_id)["state"] == "succeeded"; },
                      milliseconds(30'000)));
  EXPECT_EQ(AdminJson("/operations/" + dry_id)["matched"], kCrmBroken);
  EXPECT_EQ(DeadAndPending().first, kCrmBroken);  // a dry run changes nothing

  std::atomic<bool> traffic_ok{true};
  std::thread traffic([&] {
    for (int i = kSlackEvents; i < kSlackEvents + 100; ++i) {
      if (PostSlack(i) != 200) traffic_ok = false;
    }
  });
  Result<HttpResponse> op = Admin("POST", "/dead/replay", kOpsToken, filter + R"(,"rate_per_s":500})");
  ASSERT_TRUE(op.ok());
  ASSERT_EQ(op->status, 202) << op->body;
  EXPECT_NE(op->Header("Location").find("/admin/api/v1/operations/"), std::string::npos);
  const std::string op_id = nlohmann::json::parse(op->body)["id"];
  ASSERT_TRUE(WaitFor([&] { return AdminJson("/operations/" + op_id)["state"] != "running"; },
                      milliseconds(60'000)));
  traffic.join();
  EXPECT_TRUE(traffic_ok.load());
  nlohmann::json ended = AdminJson("/operations/" + op_id);
  EXPECT_EQ(ended["state"], "succeeded") << ended.dump();
  EXPECT_EQ(ended["done"], kCrmBroken);
  EXPECT_EQ(ended["actor"], "ops");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [dead, pending] = DeadAndPending();
        return dead == 0 && pending == 0;
      },
      milliseconds(60'000)));
  // A replay ran as attempt 1 of a new job linked to its original.
  nlohmann::json replayed = AdminJson("/jobs?state=replayed&limit=1");
  ASSERT_EQ(replayed["items"].size(), 1u);
  const std::string original = replayed["items"][0]["id"];
  nlohmann::json again = AdminJson("/jobs/" + replayed["items"][0]["replayed_as"].get<std::string>());
  EXPECT_EQ(again["replay_of"], original);
  EXPECT_EQ(again["state"], "succeeded");
  ASSERT_EQ(again["attempts"].size(), 1u);
  EXPECT_EQ(again["attempts"][0]["attempt"], 1);
  EXPECT_EQ(AdminJson("/jobs/" + original)["replays"].size(), 1u);

  // The audit log has the operation, its actor and its count.
  nlohmann::json audit = AdminJson("/audit", kReadToken);
  ASSERT_FALSE(audit["items"].empty());
  EXPECT_EQ(audit["items"][0]["action"], "dead.replay");
  EXPECT_EQ(audit["items"][0]["actor"], "ops");
  EXPECT_EQ(audit["items"][0]["target"], op_id);
  EXPECT_EQ(audit["items"][0]["count"], kCrmBroken);
  EXPECT_EQ(audit["items"][0]["detail"]["filter"]["fingerprint"], fingerprint);

  // A read token may look at everything and change nothing.
  const std::string some_job = found["items"][0]["id"];
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/jobs/" + some_job + "/retry"},
           {"POST", "/jobs/" + some_job + "/cancel"},
           {"POST", "/dead/replay"},
           {"DELETE", "/dead"},
           {"POST", "/dead/" + original + "/replay"},
           {"DELETE", "/dead/" + original},
           {"POST", "/queues/slack.event/pause"},
           {"POST", "/queues/slack.event/resume"},
           {"POST", "/operations/" + op_id + "/cancel"}}) {
    Result<HttpResponse> refused = Admin(method, path, kReadToken, method == "POST" ? "{}" : "");
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 403) << method << " " << path << ": " << refused->body;
  }
  EXPECT_EQ(AdminJson("/jobs/" + some_job, kReadToken)["id"], some_job);

  // The live feed: every type's depth at once, then what changes (this pause, below).
  // The stream looks once a second, so the pause is held until the stream has shown it.
  std::string feed;
  std::thread listener([&] {
    feed = ReadStream(
        admin_port_, "/admin/api/v1/events", kReadToken,
        [](const std::string& text) {
          return text.find("\"paused\":true") != std::string::npos &&
                 text.find("\"action\":\"queue.pause\"") != std::string::npos;
        },
        milliseconds(20'000));
  });
  std::this_thread::sleep_for(milliseconds(1500));
  // Pause: the type is not run, ingress still accepts; resume runs it.
  ASSERT_EQ(Admin("POST", "/queues/github.event/pause", kOpsToken)->status, 200);
  ASSERT_EQ(PostGithub(100'000), 200);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(AdminJson("/queues/github.event")["ready"], 1);
  EXPECT_EQ(AdminJson("/queues/github.event")["paused"], true);
  listener.join();
  ASSERT_EQ(Admin("POST", "/queues/github.event/resume", kOpsToken)->status, 200);
  EXPECT_TRUE(WaitFor([&] { return AdminJson("/queues/github.event")["ready"] == 0; },
                      milliseconds(20'000)));
  EXPECT_NE(feed.find("200 OK"), std::string::npos) << feed.substr(0, 300);
  EXPECT_NE(feed.find("text/event-stream"), std::string::npos);
  EXPECT_NE(feed.find("event: queue"), std::string::npos);
  EXPECT_NE(feed.find("\"job_type\":\"slack.event\""), std::string::npos);
  EXPECT_NE(feed.find("event: audit"), std::string::npos) << feed;
  EXPECT_NE(feed.find("\"action\":\"queue.pause\""), std::string::npos);
  EXPECT_NE(feed.find("\"paused\":true"), std::string::npos);
  answers_.push_back(feed);

  // Every read endpoint once more, then: no answer holds a configured secret.
  for (const char* path : {"/overview", "/sources", "/integrations", "/queues", "/capacity",
                           "/jobs?limit=200", "/dead", "/operations", "/audit"}) {
    AdminJson(path);
  }
  AdminJson("/jobs/" + found["items"][0]["id"].get<std::string>());
  for (const std::string& body : answers_) {
    for (const char* secret : {kSlackSecret, kGithubSecret, kCrmSecret, kAdminToken, kOpsToken,
                               kReadToken, kApiKey}) {
      EXPECT_EQ(body.find(secret), std::string::npos) << "an answer contains " << secret;
    }
  }
  EXPECT_GT(answers_.size(), 40u);
  EXPECT_EQ(server.Terminate(), 0);
}

// The CLI does what the API does, on the store directly, through the same code: find
// and group dead jobs, count then replay them by filter, show one job's story, retry
// and cancel, pause — each audited as cli:<user>.
TEST_P(HistoryTest, CliFindsGroupsReplaysAndAuditsLikeTheApi) {
  FirebreakProcess server("run", config_, dir_.File("firebreak.log"), port_);
  ASSERT_TRUE(server.Start()) << server.Log();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(PostCrm(i), 200);  // "bad": dead while broken
  for (int i = 0; i < 5; ++i) ASSERT_EQ(PostSlack(i), 200);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [dead, pending] = DeadAndPending();
        return dead == 10 && pending == 0;
      },
      milliseconds(60'000)));

  CommandResult groups = RunFirebreak({"dead", "list", "-c", config_});
  ASSERT_EQ(groups.exit_code, 0) << groups.out;
  EXPECT_NE(groups.out.find("CRM record cus_"), std::string::npos) << groups.out;
  EXPECT_NE(groups.out.find("     10  "), std::string::npos) << groups.out;
  CommandResult dry =
      RunFirebreak({"dead", "replay", "-c", config_, "--filter", "type=crm.event", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.out;
  EXPECT_NE(dry.out.find("10 dead job(s) match"), std::string::npos) << dry.out;
  EXPECT_EQ(DeadAndPending().first, 10);
  CommandResult bad = RunFirebreak({"dead", "replay", "-c", config_, "--filter", "colour=red"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("unknown filter \"colour\""), std::string::npos) << bad.out;

  std::filesystem::remove(dir_.File("broken"));
  CommandResult replay =
      RunFirebreak({"dead", "replay", "-c", config_, "--filter", "type=crm.event", "--rate", "100"});
  ASSERT_EQ(replay.exit_code, 0) << replay.out;
  EXPECT_NE(replay.out.find("replayed 10 job(s)"), std::string::npos) << replay.out;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [dead, pending] = DeadAndPending();
        return dead == 0 && pending == 0;
      },
      milliseconds(30'000)));

  CommandResult list = RunFirebreak(
      {"jobs", "list", "-c", config_, "--key", "slack.user:U3", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.out;
  nlohmann::json listed = nlohmann::json::parse(list.out.substr(list.out.find('{')), nullptr, false);
  ASSERT_TRUE(listed.is_object()) << list.out;
  ASSERT_EQ(listed["items"].size(), 1u);
  const std::string id = listed["items"][0]["id"];
  CommandResult show = RunFirebreak({"jobs", "show", id, "-c", config_});
  ASSERT_EQ(show.exit_code, 0) << show.out;
  nlohmann::json story = nlohmann::json::parse(show.out.substr(show.out.find('{')), nullptr, false);
  ASSERT_TRUE(story.is_object()) << show.out;
  EXPECT_EQ(story["state"], "succeeded");
  EXPECT_EQ(story["actions"].size(), 1u);
  EXPECT_EQ(story["attempts"].size(), 1u);
  CommandResult retry = RunFirebreak({"jobs", "retry", id, "-c", config_});
  ASSERT_EQ(retry.exit_code, 0) << retry.out;
  EXPECT_NE(retry.out.find("as new job"), std::string::npos) << retry.out;
  CommandResult cancel = RunFirebreak({"jobs", "cancel", id, "-c", config_});
  EXPECT_EQ(cancel.exit_code, 1) << cancel.out;  // succeeded: nothing to cancel
  EXPECT_NE(cancel.out.find("only a waiting job"), std::string::npos) << cancel.out;
  CommandResult pause = RunFirebreak({"queue", "pause", "slack.event", "-c", config_});
  ASSERT_EQ(pause.exit_code, 0) << pause.out;
  EXPECT_EQ(AdminJson("/queues/slack.event")["paused"], true);
  ASSERT_EQ(RunFirebreak({"queue", "resume", "slack.event", "-c", config_}).exit_code, 0);

  // The API's audit log shows the CLI's changes.
  nlohmann::json audit = AdminJson("/audit");
  std::set<std::string> actions;
  for (const auto& entry : audit["items"]) {
    EXPECT_EQ(entry["actor"].get<std::string>().rfind("cli:", 0), 0u) << entry.dump();
    actions.insert(entry["action"].get<std::string>());
  }
  EXPECT_EQ(actions, (std::set<std::string>{"dead.replay", "job.retry", "queue.pause",
                                            "queue.resume"}));
  EXPECT_EQ(server.Terminate(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, HistoryTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
