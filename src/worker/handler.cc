// Asio's headers trip GCC 12's -Wnull-dereference (false positives in its inlined
// executor and reactor code); the check stays on for this file's own code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "worker/handler.h"

#include "worker/command_handler.h"
#include "worker/url_handler.h"
#pragma GCC diagnostic pop

namespace firebreak {

Result<std::unique_ptr<Handler>> MakeHandler(const JobConfig& job, const std::string& sidecar,
                                             boost::asio::io_context& io) {
  bool has_command = !job.handler.command.empty();
  bool has_url = !job.handler.url.empty();
  if (has_command == has_url) {
    return InvalidArgument("job " + job.type + ": handler needs exactly one of command or url");
  }
  if (has_command) {
    Result<std::unique_ptr<CommandHandler>> handler = CommandHandler::Create(job, sidecar, io);
    if (!handler.ok()) return handler.status();
    return std::unique_ptr<Handler>(std::move(handler).value());
  }
  Result<std::unique_ptr<UrlHandler>> handler = UrlHandler::Create(job, io);
  if (!handler.ok()) return handler.status();
  return std::unique_ptr<Handler>(std::move(handler).value());
}

}  // namespace firebreak
