// Parts of the HTTPRoute decoder (decode_route.cc) that the GRPCRoute decoder shares: the
// fields both kinds have (parentRefs, header matches, filters, backendRefs) decode and report
// the same way. Internal to src/config/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "config/yaml_reader.h"

namespace portico::config::route_decode {

ParentRefModel parentRef(Reporter& r, const YAML::Node& node, const std::string& path,
                         const Resource& res);
// spec.parentRefs (up to 32) and spec.hostnames (up to 16, deduplicated) of a route.
void parentRefsAndHostnames(Reporter& r, MapReader& spec, const Resource& res,
                            HttpRouteModel* route);
// headers[] of a match (names compared case-insensitively; duplicates warned).
void headerMatches(Reporter& r, const YAML::Node& node, const std::string& path,
                   std::vector<StringMatchModel>* out);
// filters[] of a GRPCRoute rule: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror.
void grpcFilters(Reporter& r, const YAML::Node& node, const std::string& path, const Resource& res,
                 FiltersModel* out);
// One backendRefs[] entry of a GRPCRoute rule (with weight and the GRPCRoute filters).
BackendRefModel grpcBackendRef(Reporter& r, const YAML::Node& node, const std::string& path,
                               const Resource& res);
// `value` compiled as RE2; nullptr and an error at `mark`/`path` when it does not compile.
std::shared_ptr<const re2::RE2> regex(Reporter& r, const YAML::Mark& mark, const std::string& path,
                                      const std::string& value);

}  // namespace portico::config::route_decode
