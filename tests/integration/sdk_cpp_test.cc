// The C++ SDK (sdk/cpp) against the real binary, as the Python and TypeScript SDKs' own
// real-binary tests do: a bot written with it (sdk/cpp/tests/slack_bot.cc) handles signed
// Slack events under `firebreak run`, looks the user up through the sidecar (the slack-api
// integration, pointed at a simulated Slack), counts the conversation in a session and
// answers with a chat.postMessage action that Slack sees exactly once per event. Its
// answers and the envelopes it was given validate against schemas/.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "harness.h"
#include "support/process.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";

UpstreamReply SimulatedSlack(const UpstreamRequest& req) {
  if (req.Header("authorization") != "Bearer xoxb-test") {
    return {401, {}, R"({"ok":false,"error":"not_authed"})"};
  }
  if (req.method == "GET" && req.target.rfind("/api/users.info?user=U42", 0) == 0) {
    return {200, {}, R"({"ok":true,"user":{"id":"U42","name":"ada"}})"};
  }
  if (req.method == "POST" && req.target == "/api/chat.postMessage") {
    return {200, {}, R"({"ok":true,"ts":"2.0"})"};
  }
  return {404, {}, R"({"ok":false,"error":"unknown_method"})"};
}

std::string SlackEvent(const std::string& event_id, const std::string& text) {
  return nlohmann::json{{"type", "event_callback"},
                        {"team_id", "T1"},
                        {"event_id", event_id},
                        {"event",
                         {{"type", "message"},
                          {"user", "U42"},
                          {"channel", "C7"},
                          {"ts", "1700000000." + event_id.substr(event_id.size() - 1)},
                          {"text", text}}}}
      .dump();
}

std::vector<nlohmann::json> Posts(const UpstreamServer& slack) {
  std::vector<nlohmann::json> out;
  for (const UpstreamRequest& req : slack.Requests()) {
    if (req.target != "/api/chat.postMessage") continue;
    nlohmann::json body = nlohmann::json::parse(req.body);
    body["_idempotency_key"] = req.Header("idempotency-key");
    out.push_back(body);
  }
  return out;
}

TEST(SdkCppTest, ABotWrittenWithTheSdkRepliesOncePerEventThroughTheSidecar) {
  TempDir dir;
  UpstreamServer slack(SimulatedSlack);
  const uint16_t port = FreePort();
  std::string config = ReadFile(SourceDir() + "/sdk/testdata/firebreak.toml.in");
  config = ReplaceAll(config, "@PORT@", std::to_string(port));
  config = ReplaceAll(config, "@DIR@", dir.path());
  config =
      ReplaceAll(config, "@HANDLER@", nlohmann::json::array({FIREBREAK_SDK_CPP_TEST_BOT}).dump());
  config = ReplaceAll(config, "@SLACK_URL@", slack.Url());
  dir.Write("secret", kSecret);
  setenv("SLACK_BOT_TOKEN", "xoxb-test", 1);
  setenv("ENVELOPES", dir.File("envelopes.ndjson").c_str(), 1);
  FirebreakProcess process("run", dir.Write("firebreak.toml", config), dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto post = [&](const std::string& body) {
    return PostStatus(port, "/hooks/slack", body,
                      SlackHeaders(kSecret, body, NowSeconds(), "application/json"));
  };

  const std::string first = SlackEvent("Ev0001", "hello");
  ASSERT_EQ(post(first), 200);
  ASSERT_TRUE(WaitFor([&] { return Posts(slack).size() >= 1; }, milliseconds(20'000)))
      << process.Log();
  ASSERT_EQ(post(first), 200);  // Slack's retry of the same event
  ASSERT_EQ(post(SlackEvent("Ev0002", "again")), 200);
  ASSERT_TRUE(WaitFor([&] { return Posts(slack).size() >= 2; }, milliseconds(20'000)))
      << process.Log();
  std::this_thread::sleep_for(milliseconds(1000));  // room for a duplicate, if there were one

  std::vector<nlohmann::json> posts = Posts(slack);
  ASSERT_EQ(posts.size(), 2u);
  std::set<std::string> texts, keys;
  for (const nlohmann::json& p : posts) {
    texts.insert(p["text"].get<std::string>());
    keys.insert(p["_idempotency_key"].get<std::string>());
    EXPECT_EQ(p["channel"], "C7");
    EXPECT_FALSE(p["thread_ts"].get<std::string>().empty());
  }
  EXPECT_EQ(texts, (std::set<std::string>{"hi ada, message 1", "hi ada, message 2"}));
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys.count(""), 0u);

  EXPECT_EQ(ReadLines(dir.File("envelopes.ndjson")).size(), 2u);
  EXPECT_EQ(SchemaErrors("envelope", dir.File("envelopes.ndjson")), "");
  // The SDK's log lines reach firebreak's log under their job, with the job's trace, at
  // their own level (its debug lines are below firebreak's log_level).
  int replies = 0;
  for (const std::string& line : ReadLines(dir.File("log.txt"))) {
    nlohmann::json entry = nlohmann::json::parse(line, nullptr, false);
    if (!entry.is_object() || entry.value("msg", "") != "handler stderr") continue;
    nlohmann::json sdk = nlohmann::json::parse(entry["line"].get<std::string>());
    EXPECT_EQ(sdk["job_id"], entry["job_id"]);
    EXPECT_EQ(sdk["trace_id"], entry["trace_id"]);
    EXPECT_EQ(sdk["msg"], "replying");
    EXPECT_EQ(entry["level"], "info");
    ++replies;
  }
  EXPECT_EQ(replies, 2);
  EXPECT_EQ(process.Terminate(), 0);
}

// The same bot in command mode by hand: every kind of answer it writes (success with an
// action and an enqueued job, a retry with its wait, a type nobody handles, a batch)
// validates against schemas/answer.schema.json.
TEST(SdkCppTest, EveryAnswerTheSdkWritesValidatesAgainstTheAnswerSchema) {
  TempDir dir;
  auto envelope = [](const std::string& id, const std::string& type) {
    return nlohmann::json{
        {"id", id},
        {"type", type},
        {"source", "slack"},
        {"dedupe_key", ""},
        {"attempt", 1},
        {"max_attempts", 3},
        {"enqueued_at", "2026-11-27T20:00:00.000Z"},
        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"headers", nlohmann::json::object()},
        {"payload", nlohmann::json::object()}};
  };
  std::string in = envelope("A1", "sample.action").dump() + "\n" +
                   envelope("A2", "sample.retry").dump() + "\n" + envelope("A3", "nobody").dump() +
                   "\n";
  nlohmann::json batch = envelope("B1", "sample.action");
  batch["batch"] = {envelope("B2", "sample.action"), envelope("B3", "sample.retry")};
  in += batch.dump() + "\n";
  dir.Write("in.ndjson", in);
  const int status = RunToCompletion(
      {"/bin/sh", "-c", std::string("FIREBREAK_SIDECAR=http://127.0.0.1:1 \"$0\" < \"$1\""),
       FIREBREAK_SDK_CPP_TEST_BOT, dir.File("in.ndjson")},
      dir.File("out.ndjson"), "", milliseconds(20'000));
  ASSERT_EQ(status, 0) << ReadFile(dir.File("out.ndjson"));
  // stdout and stderr share the file: keep the answers (lines with an "ok").
  std::string answers;
  for (const std::string& line : ReadLines(dir.File("out.ndjson"))) {
    nlohmann::json answer = nlohmann::json::parse(line, nullptr, false);
    if (answer.is_object() && answer.contains("ok")) answers += line + "\n";
  }
  ASSERT_EQ(std::count(answers.begin(), answers.end(), '\n'), 4) << answers;
  EXPECT_NE(answers.find(R"("ordering_key":"chat:7")"), std::string::npos) << answers;
  EXPECT_NE(answers.find(R"("retry_after":3.0)"), std::string::npos) << answers;
  dir.Write("answers.ndjson", answers);
  EXPECT_EQ(SchemaErrors("answer", dir.File("answers.ndjson")), "");
}

}  // namespace
}  // namespace firebreak::testing
