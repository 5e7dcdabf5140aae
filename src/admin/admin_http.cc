#include "admin/admin_http.h"

#include <boost/url/parse.hpp>
#include <charconv>

#include "common/json_string.h"

namespace firebreak::admin {

namespace http = boost::beast::http;

std::string Dump(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

net::Response Answer(const net::Request& req, http::status status, std::string body) {
  net::Response res = net::MakeResponse(req, status, std::move(body));
  res.set(http::field::cache_control, "no-store");
  return res;
}

net::Response Error(const net::Request& req, http::status status, std::string_view error) {
  return Answer(req, status, ErrorJson(error));
}

net::Response StatusError(const net::Request& req, const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound:
      return Error(req, http::status::not_found, status.message());
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists:
      return Error(req, http::status::conflict, status.message());
    case StatusCode::kInvalidArgument:
      return Error(req, http::status::bad_request, status.message());
    case StatusCode::kResourceExhausted:
      return Error(req, http::status::too_many_requests, status.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded: {
      net::Response res =
          Error(req, http::status::service_unavailable, "queue unreachable: " + status.message());
      res.set(http::field::retry_after, "5");
      return res;
    }
    default:
      return Error(req, http::status::internal_server_error, status.message());
  }
}

Result<std::map<std::string, std::string>> QueryParams(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return InvalidArgument("bad request target");
  std::map<std::string, std::string> out;
  for (auto param : url->params()) out[param.key] = param.value;
  return out;
}

Status TakePage(std::map<std::string, std::string>& params, int& limit, std::string& cursor) {
  limit = kDefaultLimit;
  cursor.clear();
  if (auto it = params.find("limit"); it != params.end()) {
    const std::string& v = it->second;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
    if (ec != std::errc() || end != v.data() + v.size() || limit < 1 || limit > kMaxLimit) {
      return InvalidArgument("limit must be an integer from 1 to " + std::to_string(kMaxLimit));
    }
    params.erase(it);
  }
  if (auto it = params.find("cursor"); it != params.end()) {
    cursor = it->second;
    params.erase(it);
  }
  return Status::Ok();
}

}  // namespace firebreak::admin
