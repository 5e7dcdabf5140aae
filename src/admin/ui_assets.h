// The web console's static files (src/admin/ui/), compiled into the binary by
// cmake/embed_assets.cmake: the console never reads or downloads anything at run time.
#pragma once

#include <span>
#include <string_view>

namespace firebreak::admin {

struct UiAsset {
  std::string_view path;   // relative to src/admin/ui, '/'-separated: "app.js", "pages/jobs.js"
  std::string_view bytes;  // the file's content
};

// Sorted by path.
std::span<const UiAsset> EmbeddedUiAssets();

}  // namespace firebreak::admin
