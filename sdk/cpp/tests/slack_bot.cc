// The bot tests/integration/sdk_cpp_test.cc runs under the real firebreak binary (the same
// one the Python and TypeScript SDKs' real-binary tests write): it records its envelope,
// looks the user up through the slack-api integration, counts the conversation in a
// session, and answers with a chat.postMessage action.
#include <cstdlib>
#include <fstream>

#include "firebreak/sdk.h"

int main() {
  firebreak::Bot bot;
  bot.on("slack.event", [](firebreak::Context& ctx) {
    if (const char* path = std::getenv("ENVELOPES")) {
      std::ofstream(path, std::ios::app) << ctx.envelope().raw.dump() << "\n";
    }
    const firebreak::Json& event = ctx.payload()["event"];
    const std::string user_id = event["user"];
    auto user = ctx.integration("slack-api").get("/api/users.info", {{"user", user_id}});
    const std::string name = user.raise_for_status().json()["user"]["name"];
    ctx.log.debug("looked up", {{"user", name}});  // under firebreak's log_level: not logged
    const std::string team = ctx.payload()["team_id"];
    firebreak::Json convo =
        ctx.session("slack:" + team + ":" + user_id)
            .update(
                [](firebreak::Json c) {
                  return firebreak::Json{{"messages", c["messages"].get<int>() + 1}};
                },
                "30m", {{"messages", 0}});
    ctx.log.info("replying", {{"channel", event["channel"]}, {"messages", convo["messages"]}});
    ctx.action(
        "slack-api", "POST", "/api/chat.postMessage",
        {{"channel", event["channel"]},
         {"thread_ts", event["ts"]},
         {"text", "hi " + name + ", message " + std::to_string(convo["messages"].get<int>())}});
  });
  // For the answer-schema check: a retry with a wait, and an action's every field.
  bot.on("sample.retry", [](firebreak::Context&) { throw firebreak::Retry("later", 3); });
  bot.on("sample.action", [](firebreak::Context& ctx) {
    firebreak::ActionOptions options;
    options.headers = {{"X-Trace", "1"}};
    options.idempotency_key = "k1";
    options.ordering_key = "chat:7";
    ctx.action("slack-api", "post", "/api/chat.postMessage", {{"text", "hi"}}, options);
    firebreak::EnqueueOptions later;
    later.delay = "10m";
    ctx.enqueue("slack.reminder", {{"user", "U42"}}, later);
  });
  // Firebreak gives each process one job at a time today; two threads show concurrency.
  return bot.run(2);
}
