#include <firebreak/sdk.h>

int main() {
  firebreak::Bot bot;
  bot.on("slack.event", [](firebreak::Context& ctx) {
    const auto& event = ctx.payload()["event"];
    auto convo = ctx.session("slack:" + event["user"].get<std::string>())
                     .update([](firebreak::Json c) { c["n"] = c.value("n", 0) + 1; return c; },
                             "30m", firebreak::Json::object());
    ctx.action("slack-api", "POST", "/api/chat.postMessage",
               {{"channel", event["channel"]}, {"thread_ts", event["ts"]},
                {"text", "message " + convo["n"].dump() + " of this conversation"}});
  });
  return bot.run(4);  // 4 jobs at once on threads; bot.serve(8090) for a url handler
}
