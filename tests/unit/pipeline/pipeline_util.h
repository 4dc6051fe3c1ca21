// Shared by the in-process pipeline tests: export -> cpu compile -> load, and single calls of a
// specialization with right-padded ids/positions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "device/session.h"
#include "tests/unit/temp_dir.h"

namespace qeff::testing {


// Exports `model_dir` into <work>/export (once; later calls reuse it), compiles it for cpu with
// the given shapes and weight dtype into its own qpc dir, and loads it with 2 threads. With
// full_batch_size > 0 the export is for continuous batching (<work>/export-cb) and the qpc has
// that many KV slots. Returns null after recording a gtest failure.
std::unique_ptr<device::Session> ExportAndCompile(const std::filesystem::path& model_dir,
                                                  const std::filesystem::path& work, int prefill, int ctx,
                                                  const std::string& weight_dtype = "fp32", int full_batch_size = 0,
                                                  const std::string& kv_cache_dtype = "fp32");

// One call of specialization `spec` with ids/positions right-padded to its seq_len (position
// -1 on pads); returns the logits row (NaNs after recording a failure).
std::vector<float> RunStep(device::Session& s, int spec, const std::vector<int64_t>& ids,
                           const std::vector<int64_t>& pos);

// Index of the specialization with this seq_len, or -1.
int SpecIndex(const device::Session& s, int seq_len);

// max_i |a[i] - b[i]|; infinity if anything is NaN.
double MaxDiff(const std::vector<float>& a, const float* b);

// Cosine similarity of a and b[0 .. a.size()) (0 if either is zero or NaN).
double Cosine(const std::vector<float>& a, const float* b);
inline double Cosine(const std::vector<float>& a, const std::vector<float>& b) { return Cosine(a, b.data()); }

}  // namespace qeff::testing
