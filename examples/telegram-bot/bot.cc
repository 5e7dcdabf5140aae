// telegram-bot: counts each chat's messages and answers every one with sendMessage, in the
// chat's order. Written with the C++ SDK (sdk/cpp).
//
// firebreak checks Telegram's secret token, dedupes on update_id and stores each update as
// a job; `key = "/message/chat/id"` with `concurrency_per_key = 1` runs one chat's updates
// one at a time, in arrival order (FIFO per chat), so the session counter below counts
// them in that order. The reply is an action with the chat id as its ordering_key: stored
// with the job's success, sent once through the telegram-api integration (which puts the
// bot token in the URL, https://api.telegram.org/bot<token>/sendMessage), and sent after
// the chat's earlier replies.
#include <string>

#include "firebreak/sdk.h"

using firebreak::Context;
using firebreak::Json;

namespace {

void Reply(Context& ctx, const Json& message, const std::string& text) {
  const std::string chat = message["chat"]["id"].dump();  // an integer, negative for groups
  firebreak::ActionOptions options;
  options.ordering_key = "chat:" + chat;
  ctx.action("telegram-api", "POST", "/sendMessage",
             {{"chat_id", message["chat"]["id"]},
              {"text", text},
              {"reply_parameters", {{"message_id", message["message_id"]}}}},
             options);
}

void OnUpdate(Context& ctx) {
  const Json& update = ctx.payload();
  if (!update.contains("message")) return;  // edited messages, callbacks...: not handled here
  const Json& message = update["message"];
  const std::string name =
      message.contains("from") ? message["from"].value("first_name", "there") : "there";
  if (!message.contains("text")) {
    Reply(ctx, message, "Sorry " + name + ", I only read text messages.");
    return;
  }
  const std::string text = message["text"];
  if (text == "/start") {
    Reply(ctx, message, "Hi " + name + "! Send me anything and I will count it.");
    return;
  }
  // The chat's count, compare-and-set: a retried job after a crash may count twice, never
  // lose a message. Kept for 30 days of silence.
  const std::string chat = message["chat"]["id"].dump();
  Json count = ctx.session("telegram:chat:" + chat)
                   .update(
                       [](Json c) {
                         return Json{{"messages", c["messages"].get<int>() + 1}};
                       },
                       "720h", Json{{"messages", 0}});
  ctx.log.info("replying", {{"chat", chat}, {"messages", count["messages"]}});
  Reply(ctx, message,
        "#" + std::to_string(count["messages"].get<int>()) + " " + name + ": " + text);
}

}  // namespace

int main() {
  firebreak::Bot bot;
  bot.on("telegram.update", OnUpdate);
  return bot.run(4);
}
