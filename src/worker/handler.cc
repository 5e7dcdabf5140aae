#include "worker/handler.h"

#include "worker/command_handler.h"
#include "worker/url_handler.h"

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
