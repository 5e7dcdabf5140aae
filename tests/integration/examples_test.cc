// The shipped examples, run as they are (only ports, paths and API hosts swapped for
// simulated upstreams): the Slack-style bot replying through slack-api, and the LLM bot
// calling a chat-completion API under a cap of 40 concurrent calls with 3 retries.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kSigningSecret[] = "firebreak-example-signing-secret";

// The shipped config of `example`, pointed at this test's ports, files and upstreams.
std::string AdaptExample(const std::string& example, const TempDir& dir, uint16_t port,
                         const std::map<std::string, std::string>& hosts) {
  std::string config = ReadFile(SourceDir() + "/examples/" + example + "/firebreak.toml");
  EXPECT_FALSE(config.empty());
  config = ReplaceAll(config, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(port));
  config = ReplaceAll(config, "127.0.0.1:8081", "127.0.0.1:0");
  config = ReplaceAll(config, "var/" + example + ".db", dir.File("q.db"));
  config = ReplaceAll(config, "\"examples/", "\"" + SourceDir() + "/examples/");
  config = ReplaceAll(config, "\"python3\"", "\"/usr/bin/python3\"");
  for (const auto& [from, to] : hosts) config = ReplaceAll(config, from, to);
  return dir.Write("firebreak.toml", config);
}

Result<HttpResponse> SendSlackMessage(uint16_t port, const std::string& event_id,
                                      const std::string& user, const std::string& text) {
  nlohmann::json body = {{"type", "event_callback"},
                         {"team_id", "T1"},
                         {"event_id", event_id},
                         {"event",
                          {{"type", "message"},
                           {"channel", "C1"},
                           {"user", user},
                           {"text", text},
                           {"ts", "1700000000." + event_id.substr(2)}}}};
  const std::string text_body = body.dump();
  return PostTo(port, "/hooks/slack", text_body,
                SlackHeaders(kSigningSecret, text_body, NowSeconds(), "application/json"));
}

std::vector<nlohmann::json> PostedMessages(const UpstreamServer& slack) {
  std::vector<nlohmann::json> out;
  for (const UpstreamRequest& req : slack.Requests()) {
    if (req.target != "/api/chat.postMessage") continue;
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    body["_authorization"] = req.Header("authorization");
    body["_idempotency_key"] = req.Header("idempotency-key");
    out.push_back(body);
  }
  return out;
}

TEST(ExamplesTest, SlackBotRepliesInTheThreadThroughSlackApiAndRemembersTheConversation) {
  TempDir dir;
  UpstreamServer slack([](const UpstreamRequest&) {
    return UpstreamReply{200, {}, "{\"ok\":true,\"ts\":\"1700000001.000200\"}"};
  });
  setenv("SLACK_BOT_TOKEN", "xoxb-example-test", 1);
  uint16_t port = FreePort();
  std::string config = AdaptExample(
      "slack-bot", dir, port,
      {{"https://slack.com", slack.Url()}, {"https://hooks.slack.com", slack.Url()}});
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();

  // A slash command: form-encoded, answered in the channel through its response_url.
  const std::string command =
      "token=x&team_id=T1&channel_id=C1&user_id=U7&command=%2Fecho&text=ping+me"
      "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1234%2Fabcd&trigger_id=13.4";
  auto command_res = PostTo(port, "/hooks/slack", command,
                            SlackHeaders(kSigningSecret, command, NowSeconds(),
                                         "application/x-www-form-urlencoded"));
  ASSERT_TRUE(command_res.ok() && command_res->status == 200) << process.Log();
  ASSERT_EQ(SendSlackMessage(port, "Ev1", "U1", "hello")->status, 200);
  ASSERT_EQ(SendSlackMessage(port, "Ev2", "U1", "again")->status, 200);
  ASSERT_EQ(SendSlackMessage(port, "Ev1", "U1", "hello")->status, 200);  // a Slack retry
  ASSERT_TRUE(WaitFor([&] { return PostedMessages(slack).size() >= 2; }, milliseconds(20'000)))
      << process.Log();
  std::this_thread::sleep_for(milliseconds(300));
  std::vector<nlohmann::json> posted = PostedMessages(slack);
  ASSERT_EQ(posted.size(), 2u) << "the duplicate delivery must not reply twice";
  // ordering = "/event/channel": the channel's replies go out in order.
  EXPECT_NE(posted[0]["text"].get<std::string>().find("'hello' (message 1 "), std::string::npos)
      << posted[0].dump();
  EXPECT_NE(posted[1]["text"].get<std::string>().find("'again' (message 2 "), std::string::npos)
      << posted[1].dump();
  for (const nlohmann::json& message : posted) {
    EXPECT_EQ(message["channel"], "C1");
    EXPECT_EQ(message["_authorization"], "Bearer xoxb-example-test");
    EXPECT_FALSE(message["_idempotency_key"].get<std::string>().empty());
  }
  EXPECT_EQ(posted[0]["thread_ts"], "1700000000.1");
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const UpstreamRequest& req : slack.Requests()) {
          if (req.target == "/commands/T1/1234/abcd") return true;
        }
        return false;
      },
      milliseconds(20'000)))
      << process.Log();
  for (const UpstreamRequest& req : slack.Requests()) {
    if (req.target != "/commands/T1/1234/abcd") continue;
    nlohmann::json body = nlohmann::json::parse(req.body);
    EXPECT_EQ(body["response_type"], "in_channel");
    EXPECT_EQ(body["text"], "<@U7> ran /echo 'ping me'");
    EXPECT_EQ(req.Header("authorization"), "") << "the response_url needs no token";
  }
  EXPECT_EQ(process.Log().find("xoxb-example-test"), std::string::npos);
  EXPECT_EQ(process.Terminate(), 0);
}

// Discord's flow (discord.com/developers/docs/interactions/receiving-and-responding):
// PING answered {"type":1}; a slash command answered {"type":5} ("thinking…") at once;
// then the bot edits that response through the interaction webhook, once, even when
// Discord delivers the interaction twice.
TEST(ExamplesTest, DiscordBotDefersASlashCommandAndFollowsUpThroughTheInteractionWebhook) {
  TempDir dir;
  UpstreamServer discord([](const UpstreamRequest&) {
    return UpstreamReply{200, {}, R"({"id":"1187","content":"edited"})"};
  });
  const uint16_t port = FreePort();
  const std::string config =
      AdaptExample("discord-bot", dir, port, {{"https://discord.com", discord.Url()}});
  const std::string seed =
      ReadFile(SourceDir() + "/examples/discord-bot/dev-secrets/discord-signing-key");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto send = [&](const std::string& body) {
    const std::string ts = std::to_string(NowSeconds());
    return PostTo(port, "/hooks/discord", body,
                  {{"X-Signature-Ed25519", Ed25519SignHex(seed, ts + body)},
                   {"X-Signature-Timestamp", ts}});
  };

  auto ping = send(R"({"id":"900","application_id":"APP1","type":1,"token":"t0","version":1})");
  ASSERT_TRUE(ping.ok() && ping->status == 200) << process.Log();
  EXPECT_EQ(nlohmann::json::parse(ping->body)["type"], 1);
  const std::string command = R"({"id":"901","application_id":"APP1","type":2,"token":"tok-901",)"
                              R"("version":1,"channel_id":"C9","data":{"id":"cmd","name":"ask",)"
                              R"("type":1,"options":[{"name":"question","type":3,"value":"why?"}]},)"
                              R"("member":{"user":{"id":"U5","username":"ada"}}})";
  auto deferred = send(command);
  ASSERT_TRUE(deferred.ok() && deferred->status == 200) << process.Log();
  EXPECT_EQ(nlohmann::json::parse(deferred->body)["type"], 5);
  auto again = send(command);  // Discord delivering the same interaction twice
  ASSERT_TRUE(again.ok() && again->status == 200);

  const std::string webhook = "/api/v10/webhooks/APP1/tok-901/messages/@original";
  auto edits = [&] {
    std::vector<UpstreamRequest> out;
    for (const UpstreamRequest& req : discord.Requests()) {
      if (req.target == webhook) out.push_back(req);
    }
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return !edits().empty(); }, milliseconds(20'000))) << process.Log();
  std::this_thread::sleep_for(milliseconds(500));
  ASSERT_EQ(edits().size(), 1u) << "one follow-up per interaction";
  const UpstreamRequest edit = edits().front();
  EXPECT_EQ(edit.method, "PATCH");
  EXPECT_FALSE(edit.Header("idempotency-key").empty());
  nlohmann::json body = nlohmann::json::parse(edit.body);
  EXPECT_EQ(body["content"], "ada asked: 'why?'. (The answer would come from your model here.)");
  EXPECT_EQ(discord.Requests().size(), 1u) << "nothing for the PING";
  EXPECT_EQ(process.Terminate(), 0);
}

// GitHub's webhook shape (docs.github.com/en/webhooks): X-Hub-Signature-256 over the body,
// X-GitHub-Event and X-GitHub-Delivery headers. A new issue gets one label through the REST
// API (POST /repos/{owner}/{repo}/issues/{number}/labels), a redelivery none more, a
// closed issue none; the TypeScript bot's token stays with firebreak.
TEST(ExamplesTest, GithubBotLabelsEachNewIssueOnceThroughTheRestApi) {
  TempDir dir;
  UpstreamServer github([](const UpstreamRequest&) {
    return UpstreamReply{200, {}, R"([{"id":208045946,"name":"bug"}])"};
  });
  setenv("GITHUB_TOKEN", "ghp_example_test", 1);
  const uint16_t port = FreePort();
  const std::string config =
      AdaptExample("github-bot", dir, port, {{"https://api.github.com", github.Url()}});
  const std::string secret =
      ReadFile(SourceDir() + "/examples/github-bot/dev-secrets/github-webhook-secret");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto deliver = [&](const std::string& event, const std::string& delivery, const std::string& body) {
    return PostStatus(port, "/hooks/github", body,
                      {{"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(secret, body)},
                       {"X-GitHub-Event", event},
                       {"X-GitHub-Delivery", delivery}});
  };
  auto issue = [](const std::string& action, int number, const std::string& title) {
    return nlohmann::json{{"action", action},
                          {"issue", {{"number", number}, {"title", title}, {"body", "steps: ..."}}},
                          {"repository", {{"full_name", "acme/widgets"}}}}
        .dump();
  };
  EXPECT_EQ(deliver("ping", "d-0", R"({"zen":"Keep it logically awesome.","hook_id":1})"), 200);
  EXPECT_EQ(deliver("issues", "d-1", issue("opened", 7, "Crash on start")), 200);
  EXPECT_EQ(deliver("issues", "d-1", issue("opened", 7, "Crash on start")), 200);  // redelivery
  EXPECT_EQ(deliver("issues", "d-2", issue("opened", 8, "Add dark mode")), 200);
  EXPECT_EQ(deliver("issues", "d-3", issue("closed", 7, "Crash on start")), 200);

  auto labels = [&] {
    std::map<std::string, nlohmann::json> out;
    for (const UpstreamRequest& req : github.Requests()) out[req.target] = nlohmann::json::parse(req.body);
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return labels().size() >= 2; }, milliseconds(20'000))) << process.Log();
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(10'000)));
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_EQ(github.Requests().size(), 2u) << "one label call per new issue, none for the rest";
  EXPECT_EQ(labels()["/repos/acme/widgets/issues/7/labels"], nlohmann::json::parse(R"({"labels":["bug"]})"));
  EXPECT_EQ(labels()["/repos/acme/widgets/issues/8/labels"], nlohmann::json::parse(R"({"labels":["triage"]})"));
  for (const UpstreamRequest& req : github.Requests()) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.Header("authorization"), "Bearer ghp_example_test");
    EXPECT_EQ(req.Header("x-github-api-version"), "2022-11-28");
    EXPECT_FALSE(req.Header("idempotency-key").empty());
  }
  EXPECT_EQ(process.Log().find("ghp_example_test"), std::string::npos);
  EXPECT_EQ(process.Terminate(), 0);
}

TEST(ExamplesTest, LlmBotCapsModelCallsAtFortyAndRetriesOnTheSchedule) {
  TempDir dir;
  std::mutex mu;
  std::map<std::string, std::vector<Clock::time_point>> attempts;  // by Idempotency-Key
  std::map<std::string, std::string> last_prompt;                  // by user text
  UpstreamServer llm(
      [&](const UpstreamRequest& req) {
        nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
        std::string said = body["messages"].back()["content"];
        int attempt = 0;
        {
          std::lock_guard lock(mu);
          auto& times = attempts[req.Header("idempotency-key")];
          times.push_back(req.at);
          attempt = static_cast<int>(times.size());
          last_prompt[said] = req.body;
        }
        UpstreamReply reply;
        // Slow enough that the handlers' calls overlap. The 503s take as long as the
        // answers: a fast 503 finishes before any answer, and when a loaded machine
        // spreads the first wave's calls out, 10 fast failures could meet fewer than 10
        // finished answers and open the example's breaker (50% of 20 calls) for 15 s.
        reply.delay = milliseconds(1000);
        if (said.find("flaky") != std::string::npos && attempt <= 2) {
          reply.status = 503;
          reply.body = "{\"error\":{\"message\":\"overloaded\"}}";
          return reply;
        }
        reply.body = nlohmann::json{{"choices", {{{"message", {{"role", "assistant"},
                                                               {"content", "model: " + said}}}}}}}
                         .dump();
        return reply;
      },
      4);
  UpstreamServer slack;
  setenv("SLACK_BOT_TOKEN", "xoxb-example-test", 1);
  setenv("OPENAI_API_KEY", "sk-example-test", 1);
  uint16_t port = FreePort();
  std::string config = AdaptExample(
      "llm-bot", dir, port, {{"https://slack.com", slack.Url()}, {"https://api.openai.com", llm.Url()}});
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();

  // Two waves of 50 at once: the first also starts the 50 handler processes, the second
  // finds them warm. 5 of each wave get two 503s before the model answers.
  constexpr int kMessages = 100;
  for (int wave = 0; wave < 2; ++wave) {
    std::vector<std::thread> senders;
    for (int i = wave * 50; i < wave * 50 + 50; ++i) {
      senders.emplace_back([&, i] {
        std::string text = (i % 10 == 3 ? "flaky question " : "question ") + std::to_string(i);
        auto res = SendSlackMessage(port, "Ev" + std::to_string(i), "U" + std::to_string(i), text);
        EXPECT_TRUE(res.ok() && res->status == 200);
      });
    }
    for (std::thread& t : senders) t.join();
    ASSERT_TRUE(WaitFor(
        [&] { return PostedMessages(slack).size() >= static_cast<size_t>(wave * 50 + 50); },
        milliseconds(60'000)))
        << PostedMessages(slack).size() << " replies\n"
        << process.Log();
  }

  // The cap held, and was used.
  EXPECT_LE(llm.peak_in_flight(), 40);
  EXPECT_GE(llm.peak_in_flight(), 30);
  std::map<std::string, std::string> replies;
  for (const nlohmann::json& message : PostedMessages(slack)) {
    replies[message["text"]] = message["thread_ts"];
  }
  EXPECT_EQ(replies.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(replies.count("model: flaky question 3"), 1u);
  {
    std::lock_guard lock(mu);
    int flaky = 0;
    for (const auto& [key, times] : attempts) {
      if (times.size() == 1) continue;
      ++flaky;
      // A 503 after 1 s, retry after 250 ms (jittered to 125..375), a 503 after 1 s,
      // retry after 1 s (500..1500).
      ASSERT_EQ(times.size(), 3u) << key;
      EXPECT_GE(times[1] - times[0], milliseconds(1000 + 125)) << key;
      EXPECT_GE(times[2] - times[1], milliseconds(1000 + 500)) << key;
      EXPECT_LE(times[2] - times[1], milliseconds(1000 + 1500 + 300)) << key;
    }
    EXPECT_EQ(flaky, 10);
  }

  // The conversation is remembered: a follow-up carries the earlier turn.
  ASSERT_EQ(SendSlackMessage(port, "Ev900", "U7", "and then?")->status, 200);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return last_prompt.count("and then?") > 0;
  }, milliseconds(20'000)));
  {
    std::lock_guard lock(mu);
    nlohmann::json prompt = nlohmann::json::parse(last_prompt["and then?"]);
    ASSERT_GE(prompt["messages"].size(), 4u) << prompt.dump();  // system, user, model, user
    EXPECT_EQ(prompt["messages"][1]["content"], "question 7");
    EXPECT_EQ(prompt["messages"][2]["content"], "model: question 7");
  }
  EXPECT_EQ(llm.Requests().front().Header("authorization"), "Bearer sk-example-test");
  std::cout << "llm upstream peak concurrency " << llm.peak_in_flight()
            << " for waves of 50 simultaneous messages (cap 40)\n";
  EXPECT_EQ(process.Terminate(), 0);
}

// WhatsApp Cloud API's webhooks (developers.facebook.com/docs/whatsapp/cloud-api/webhooks):
// the GET subscription handshake, then POSTs signed with X-Hub-Signature-256 that batch
// messages and statuses. Each message gets one reply, a contextual reply through
// POST /v21.0/<phone_number_id>/messages (cloud-api/reference/messages), however often Meta
// delivers it; statuses get none, and the access token stays with firebreak.
TEST(ExamplesTest, WhatsappBotRepliesThroughTheCloudApiOncePerMessage) {
  TempDir dir;
  UpstreamServer graph([](const UpstreamRequest& req) {
    // The Graph API's answer to a sent message.
    nlohmann::json sent = nlohmann::json::parse(req.body, nullptr, false);
    std::string to = sent.is_object() && sent.contains("to") ? sent["to"].get<std::string>() : "";
    return UpstreamReply{200,
                         {},
                         nlohmann::json{{"messaging_product", "whatsapp"},
                                        {"contacts", {{{"input", to}, {"wa_id", to}}}},
                                        {"messages", {{{"id", "wamid.out-" + to}}}}}
                             .dump()};
  });
  setenv("WHATSAPP_TOKEN", "EAAGexampleTestToken", 1);
  const uint16_t port = FreePort();
  const std::string config =
      AdaptExample("whatsapp-bot", dir, port, {{"https://graph.facebook.com", graph.Url()}});
  const std::string secret =
      ReadFile(SourceDir() + "/examples/whatsapp-bot/dev-secrets/meta-app-secret");
  const std::string verify_token =
      ReadFile(SourceDir() + "/examples/whatsapp-bot/dev-secrets/meta-verify-token");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  const std::string hook = "http://127.0.0.1:" + std::to_string(port) + "/hooks/whatsapp";

  // The handshake Meta does when the Callback URL is saved: the challenge echoed as it came.
  auto handshake = [&](const std::string& token) {
    HttpRequest req;
    req.method = "GET";
    req.url = hook + "?hub.mode=subscribe&hub.verify_token=" + token + "&hub.challenge=1158201444";
    return HttpCall(req);
  };
  auto verified = handshake(verify_token);
  ASSERT_TRUE(verified.ok() && verified->status == 200) << process.Log();
  EXPECT_EQ(verified->body, "1158201444");
  EXPECT_EQ(handshake("not-the-token")->status, 403);

  const std::string phone_number_id = "106540352242922";
  const std::string ada = "15551234567", bo = "447700900123";
  const std::string m1 = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzRUIwMUQ3RjU2QjlBNjVCNDU4MQA=";
  const std::string m2 = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzRUIwQTBCMjE4QzY1QTg0OTlDNQA=";
  const std::string m3 = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDlEMDU5RjM3QkIyQUE0NjYA";
  const std::string now = std::to_string(NowSeconds());
  auto text = [&](const std::string& id, const std::string& from, const std::string& body) {
    return nlohmann::json{{"from", from},
                          {"id", id},
                          {"timestamp", now},
                          {"type", "text"},
                          {"text", {{"body", body}}}};
  };
  auto contact = [](const std::string& name, const std::string& wa_id) {
    return nlohmann::json{{"profile", {{"name", name}}}, {"wa_id", wa_id}};
  };
  // A delivery as Meta sends it: one entry (the WhatsApp Business Account), one change.
  auto delivery = [&](nlohmann::json value) {
    value["messaging_product"] = "whatsapp";
    value["metadata"] = {{"display_phone_number", "15550783881"},
                         {"phone_number_id", phone_number_id}};
    return nlohmann::json{
        {"object", "whatsapp_business_account"},
        {"entry",
         {{{"id", "102290129340398"}, {"changes", {{{"value", value}, {"field", "messages"}}}}}}}}
        .dump();
  };
  auto deliver = [&](const std::string& body, const std::string& signature = "") {
    return PostStatus(port, "/hooks/whatsapp", body,
                      {{"X-Hub-Signature-256",
                        signature.empty() ? "sha256=" + HmacSha256Hex(secret, body) : signature}});
  };

  const std::string first =
      delivery({{"contacts", {contact("Ada", ada)}}, {"messages", {text(m1, ada, "hello")}}});
  EXPECT_EQ(deliver(first), 200) << process.Log();
  // Two messages in one delivery: Ada again, and Bo with a photo (not text).
  nlohmann::json photo = {{"from", bo},
                          {"id", m3},
                          {"timestamp", now},
                          {"type", "image"},
                          {"image",
                           {{"mime_type", "image/jpeg"},
                            {"id", "1479537139650973"},
                            {"sha256", "u8Wj0tNbQnCMbUFnx3GLyBR/qgvXhZ4xnuNRmZAHpyc="}}}};
  EXPECT_EQ(deliver(delivery({{"contacts", {contact("Ada", ada), contact("Bo", bo)}},
                              {"messages", {text(m2, ada, "how are you?"), photo}}})),
            200);
  EXPECT_EQ(deliver(first), 200);  // Meta retrying a delivery it saw no answer to
  // Statuses of replies sent earlier: nothing to answer.
  nlohmann::json conversation = {{"id", "c2b6f8e3d0a1"}, {"origin", {{"type", "service"}}}};
  nlohmann::json pricing = {{"billable", false}, {"pricing_model", "PMP"}, {"category", "service"}};
  EXPECT_EQ(deliver(delivery({{"statuses",
                               {{{"id", "wamid.out-" + ada},
                                 {"status", "delivered"},
                                 {"timestamp", now},
                                 {"recipient_id", ada},
                                 {"conversation", conversation},
                                 {"pricing", pricing}},
                                {{"id", "wamid.out-" + ada},
                                 {"status", "read"},
                                 {"timestamp", now},
                                 {"recipient_id", ada}}}}})),
            200);
  EXPECT_EQ(deliver(first, "sha256=" + std::string(64, '0')), 401) << "a forged signature";

  ASSERT_TRUE(WaitFor([&] { return graph.Requests().size() >= 3; }, milliseconds(20'000)))
      << process.Log();
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(10'000)));
  std::this_thread::sleep_for(milliseconds(300));
  const std::vector<UpstreamRequest> sent = graph.Requests();
  ASSERT_EQ(sent.size(), 3u) << "one reply per message: none twice, none for the statuses";
  std::map<std::string, nlohmann::json> replies;  // by the message replied to
  std::set<std::string> keys;
  for (const UpstreamRequest& req : sent) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.target, "/v21.0/" + phone_number_id + "/messages");
    EXPECT_EQ(req.Header("authorization"), "Bearer EAAGexampleTestToken");
    EXPECT_FALSE(req.Header("idempotency-key").empty());
    keys.insert(req.Header("idempotency-key"));
    nlohmann::json body = nlohmann::json::parse(req.body);
    EXPECT_EQ(body["messaging_product"], "whatsapp");
    EXPECT_EQ(body["recipient_type"], "individual");
    EXPECT_EQ(body["type"], "text");
    replies[body["context"]["message_id"].get<std::string>()] = body;
  }
  EXPECT_EQ(keys.size(), 3u);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[m1]["to"], ada);
  EXPECT_EQ(replies[m1]["text"]["body"], "Hi Ada, you said: hello\n(message 1 from you)");
  EXPECT_EQ(replies[m2]["to"], ada);
  EXPECT_EQ(replies[m2]["text"]["body"], "Hi Ada, you said: how are you?\n(message 2 from you)");
  EXPECT_EQ(replies[m3]["to"], bo);
  EXPECT_EQ(replies[m3]["text"]["body"], "Sorry, I only read text messages (got image).");
  EXPECT_EQ(process.Log().find("EAAGexampleTestToken"), std::string::npos);
  EXPECT_EQ(process.Terminate(), 0);
}

// Telegram's Bot API (core.telegram.org/bots/api): updates arrive with the setWebhook
// secret token in X-Telegram-Bot-Api-Secret-Token; the bot (C++, sdk/cpp) answers with
// sendMessage at https://api.telegram.org/bot<token>/sendMessage. One chat's updates run
// one at a time in arrival order, and its replies go out one at a time in that order (the
// actions' ordering_key), even when Telegram is slow to answer each.
TEST(ExamplesTest, TelegramBotAnswersEachChatInOrderThroughSendMessage) {
  TempDir dir;
  UpstreamServer telegram([](const UpstreamRequest&) {
    UpstreamReply reply{200, {}, R"({"ok":true,"result":{"message_id":1}})"};
    reply.delay = milliseconds(150);
    return reply;
  });
  setenv("TELEGRAM_BOT_TOKEN", "123456:ABC-example-test", 1);
  const uint16_t port = FreePort();
  const std::string config =
      AdaptExample("telegram-bot", dir, port,
                   {{"https://api.telegram.org", telegram.Url()},
                    {"build/release/examples/telegram-bot", FIREBREAK_TELEGRAM_BOT}});
  const std::string secret =
      ReadFile(SourceDir() + "/examples/telegram-bot/dev-secrets/telegram-secret-token");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto deliver = [&](const nlohmann::json& update, const std::string& token) {
    return PostStatus(port, "/hooks/telegram", update.dump(),
                      {{"X-Telegram-Bot-Api-Secret-Token", token}});
  };
  int next_update = 500;
  auto message = [&](int64_t chat, int message_id, const nlohmann::json& content) {
    nlohmann::json m = {{"message_id", message_id},
                        {"from", {{"id", 42}, {"is_bot", false}, {"first_name", "Ada"}}},
                        {"chat", {{"id", chat}, {"type", chat < 0 ? "group" : "private"}}},
                        {"date", NowSeconds()}};
    m.update(content);
    return nlohmann::json{{"update_id", next_update++}, {"message", m}};
  };
  auto sends = [&](int64_t chat) {
    std::vector<nlohmann::json> out;
    for (const UpstreamRequest& req : telegram.Requests()) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (body.is_object() && body["chat_id"] == chat) {
        body["_target"] = req.target;
        out.push_back(body);
      }
    }
    return out;
  };

  // Chat 100: four messages back to back, and Telegram redelivering the first update.
  const nlohmann::json first = message(100, 1, {{"text", "one"}});
  ASSERT_EQ(deliver(first, secret), 200);
  for (int i = 2; i <= 4; ++i) {
    ASSERT_EQ(deliver(message(100, i, {{"text", "m" + std::to_string(i)}}), secret), 200);
  }
  ASSERT_EQ(deliver(first, secret), 200);
  EXPECT_EQ(deliver(message(100, 9, {{"text", "forged"}}), "wrong-token"), 401);
  ASSERT_TRUE(WaitFor([&] { return sends(100).size() >= 4; }, milliseconds(20'000))) << process.Log();
  std::this_thread::sleep_for(milliseconds(500));
  const std::vector<nlohmann::json> chat = sends(100);
  ASSERT_EQ(chat.size(), 4u) << "one reply per update; the redelivery and the forgery none";
  const char* const expected[] = {"#1 Ada: one", "#2 Ada: m2", "#3 Ada: m3", "#4 Ada: m4"};
  for (size_t i = 0; i < chat.size(); ++i) {
    EXPECT_EQ(chat[i]["text"], expected[i]) << "replies in the chat's order";
    EXPECT_EQ(chat[i]["reply_parameters"]["message_id"], static_cast<int>(i) + 1);
    EXPECT_EQ(chat[i]["_target"], "/bot123456:ABC-example-test/sendMessage");
  }
  EXPECT_EQ(telegram.peak_in_flight(), 1) << "a chat's replies go out one at a time";

  // A group (negative id) with a photo, and an edit the bot does not handle.
  ASSERT_EQ(deliver(message(-200, 1, {{"photo", {{{"file_id", "F1"}, {"width", 90}, {"height", 90}}}}}), secret), 200);
  ASSERT_EQ(deliver(nlohmann::json{{"update_id", next_update++},
                                   {"edited_message", message(-200, 1, {{"text", "x"}})["message"]}},
                    secret),
            200);
  ASSERT_EQ(deliver(message(-200, 2, {{"text", "/start"}}), secret), 200);
  ASSERT_TRUE(WaitFor([&] { return sends(-200).size() >= 2; }, milliseconds(20'000))) << process.Log();
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(10'000)));
  const std::vector<nlohmann::json> group = sends(-200);
  ASSERT_EQ(group.size(), 2u);
  EXPECT_EQ(group[0]["text"], "Sorry Ada, I only read text messages.");
  EXPECT_EQ(group[1]["text"], "Hi Ada! Send me anything and I will count it.");
  EXPECT_EQ(telegram.Requests().size(), 6u);
  EXPECT_EQ(process.Log().find("ABC-example-test"), std::string::npos) << "the token stays secret";
  // `firebreak send` signs with the source's secret alone: trying the bot needs no API token.
  unsetenv("TELEGRAM_BOT_TOKEN");
  CommandResult sent = RunFirebreak({"send", "-c", config, "--source", "telegram"});
  EXPECT_EQ(sent.exit_code, 0) << sent.out;
  EXPECT_NE(sent.out.find("-> 200"), std::string::npos) << sent.out;
  EXPECT_EQ(process.Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
