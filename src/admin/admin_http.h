// Answers of the admin API, shared by its route files: JSON bodies, errors, paging.
#pragma once

#include <boost/beast/http/status.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http_server.h"

namespace firebreak::admin {

inline constexpr int kDefaultLimit = 50;
inline constexpr int kMaxLimit = 1000;

// JSON text; bytes that are not UTF-8 (job types, errors from the store) are replaced
// instead of throwing.
std::string Dump(const nlohmann::json& json);
// A JSON answer that is never cached.
net::Response Answer(const net::Request& req, boost::beast::http::status status,
                     std::string body);
net::Response Error(const net::Request& req, boost::beast::http::status status,
                    std::string_view error);
// The answer for a failed queue call: 404, 409 (a state that does not allow it), 400,
// 503 with Retry-After (store unreachable) or 500.
net::Response StatusError(const net::Request& req, const Status& status);

// The query parameters of `target` (the last value of a repeated one); kInvalidArgument
// for a target that is not an origin-form URL.
Result<std::map<std::string, std::string>> QueryParams(std::string_view target);
// Takes ?limit= (1..kMaxLimit, default kDefaultLimit) and ?cursor= out of `params`.
Status TakePage(std::map<std::string, std::string>& params, int& limit, std::string& cursor);

}  // namespace firebreak::admin
