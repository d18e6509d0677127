// The Compressor base (headers, size checks, float32/float64 conversion), every compressor, and
// the spec parser.
#include "decent/compress/compressor.h"

#include "wire.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

namespace decent::compress {
namespace {

// Kind bytes of the header; never reuse a value.
enum Kind : std::uint8_t {
  kNone = 1,
  kFp16 = 2,
  kBf16 = 3,
  kQsgd = 4,
  kKbit = 5,
  kRandk = 6,
  kTopk = 7,
  kSign = 8,
  kFp32 = 9,
};

const char* kind_name(std::uint8_t kind) {
  switch (kind) {
    case kNone:
      return "none";
    case kFp16:
      return "fp16";
    case kBf16:
      return "bf16";
    case kQsgd:
      return "qsgd";
    case kKbit:
      return "kbit";
    case kRandk:
      return "randk";
    case kTopk:
      return "topk";
    case kSign:
      return "sign";
    case kFp32:
      return "fp32";
    default:
      return "unknown";
  }
}

// Counter-based generator (SplitMix64): a stream is a pure function of its seed.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

// float32 >= v for finite non-negative v, so that |v_i| / scale never exceeds 1 after rounding.
float round_up_to_float(double v) {
  float f = static_cast<float>(v);
  if (std::isfinite(f) && static_cast<double>(f) < v)
    f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// IEEE binary format with `mantissa` fraction bits and `exponent` exponent bits in 16 bits
// (fp16: 10/5, bf16: 7/8), rounding to nearest even straight from double (no double rounding).
std::uint16_t to_small_float(double x, int mantissa, int exponent) {
  const int bias = (1 << (exponent - 1)) - 1;
  const int min_exponent = 1 - bias;
  const std::uint32_t all_ones = (1u << exponent) - 1;
  const std::uint32_t sign = std::signbit(x) ? 0x8000u : 0u;
  if (std::isnan(x))
    return static_cast<std::uint16_t>(sign | (all_ones << mantissa) | (1u << (mantissa - 1)));
  const double a = std::fabs(x);
  const std::uint32_t infinity = sign | (all_ones << mantissa);
  if (std::isinf(a)) return static_cast<std::uint16_t>(infinity);
  if (a < std::ldexp(1.0, min_exponent)) {
    // Subnormal range; a result of 2^mantissa is the smallest normal number, same bits.
    const auto v =
        static_cast<std::uint32_t>(std::nearbyint(std::ldexp(a, mantissa - min_exponent)));
    return static_cast<std::uint16_t>(sign | v);
  }
  int e = 0;
  std::frexp(a, &e);
  int unbiased = e - 1;  // a in [2^unbiased, 2^(unbiased+1))
  auto v = static_cast<std::uint32_t>(std::nearbyint(std::ldexp(a, mantissa - unbiased)));
  if (v == (2u << mantissa)) {
    v = 1u << mantissa;
    ++unbiased;
  }
  if (unbiased > bias) return static_cast<std::uint16_t>(infinity);
  return static_cast<std::uint16_t>(
      sign | (static_cast<std::uint32_t>(unbiased + bias) << mantissa) | (v - (1u << mantissa)));
}

double from_small_float(std::uint16_t bits, int mantissa, int exponent) {
  const int bias = (1 << (exponent - 1)) - 1;
  const std::uint32_t all_ones = (1u << exponent) - 1;
  const std::uint32_t e = (bits >> mantissa) & all_ones;
  const std::uint32_t fraction = bits & ((1u << mantissa) - 1);
  const double sign = (bits & 0x8000u) ? -1.0 : 1.0;
  if (e == all_ones)
    return fraction ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  if (e == 0) return sign * std::ldexp(static_cast<double>(fraction), 1 - bias - mantissa);
  return sign * std::ldexp(static_cast<double>(fraction + (1u << mantissa)),
                           static_cast<int>(e) - bias - mantissa);
}

// Number of buckets of `bucket` elements (0: one bucket) covering `count` elements.
std::size_t bucket_count(std::size_t count, std::size_t bucket) {
  if (count == 0) return 0;
  if (bucket == 0) return 1;
  return (count + bucket - 1) / bucket;
}

// Calls fn(begin, end) for every bucket of [0, count).
template <typename Fn>
void for_each_bucket(std::size_t count, std::size_t bucket, Fn&& fn) {
  const std::size_t width = bucket == 0 ? count : bucket;
  for (std::size_t b = 0; b < count; b += width) fn(b, std::min(count, b + width));
}

// Bits needed for the integers 0..v.
int bit_width(std::uint32_t v) {
  int bits = 0;
  while (bits < 32 && (std::uint64_t{1} << bits) <= v) ++bits;
  return bits;
}

// ---------------------------------------------------------------- lossless and casts

// "none": the caller's values as they are (float32 or float64).
class Identity final : public Compressor {
 public:
  std::string spec() const override { return "none"; }
  bool unbiased() const override { return true; }
  std::size_t encoded_size(std::size_t count, DType source) const override {
    return kHeaderBytes + count * (source == DType::kFloat64 ? 8 : 4);
  }

 protected:
  std::uint8_t kind() const override { return kNone; }
  std::uint8_t parameter(DType source) const override { return source == DType::kFloat64 ? 1 : 0; }
  void encode_body(const double* v, std::size_t n, DType source, std::uint64_t,
                   std::vector<std::uint8_t>& out) const override {
    for (std::size_t i = 0; i < n; ++i) {
      if (source == DType::kFloat64)
        wire::put_f64(out, v[i]);
      else
        wire::put_f32(out, static_cast<float>(v[i]));
    }
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType source,
                   double* out) const override {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = source == DType::kFloat64 ? wire::get_f64(body + 8 * i)
                                         : static_cast<double>(wire::get_f32(body + 4 * i));
  }
};

class Fp32 final : public Compressor {
 public:
  std::string spec() const override { return "fp32"; }
  bool unbiased() const override { return false; }
  std::size_t encoded_size(std::size_t count, DType) const override {
    return kHeaderBytes + 4 * count;
  }

 protected:
  std::uint8_t kind() const override { return kFp32; }
  void encode_body(const double* v, std::size_t n, DType, std::uint64_t,
                   std::vector<std::uint8_t>& out) const override {
    for (std::size_t i = 0; i < n; ++i) wire::put_f32(out, static_cast<float>(v[i]));
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType, double* out) const override {
    for (std::size_t i = 0; i < n; ++i) out[i] = wire::get_f32(body + 4 * i);
  }
};

// fp16 (IEEE half) or bf16 (bfloat16), 2 bytes per element.
class SmallFloat final : public Compressor {
 public:
  SmallFloat(std::uint8_t kind, int mantissa, int exponent)
      : kind_(kind), mantissa_(mantissa), exponent_(exponent) {}
  std::string spec() const override { return kind_name(kind_); }
  bool unbiased() const override { return false; }
  std::size_t encoded_size(std::size_t count, DType) const override {
    return kHeaderBytes + 2 * count;
  }

 protected:
  std::uint8_t kind() const override { return kind_; }
  void encode_body(const double* v, std::size_t n, DType, std::uint64_t,
                   std::vector<std::uint8_t>& out) const override {
    for (std::size_t i = 0; i < n; ++i)
      wire::put_u16(out, to_small_float(v[i], mantissa_, exponent_));
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType, double* out) const override {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = from_small_float(wire::get_u16(body + 2 * i), mantissa_, exponent_);
  }

 private:
  std::uint8_t kind_;
  int mantissa_, exponent_;
};

// ---------------------------------------------------------------- quantizers

// Common layout of the bucketed quantizers: one float32 scale per bucket, then `bits` per
// element, bit-packed.
class Bucketed : public Compressor {
 public:
  explicit Bucketed(std::size_t bucket) : bucket_(bucket) {}
  std::size_t encoded_size(std::size_t count, DType) const override {
    return kHeaderBytes + 4 * bucket_count(count, bucket_) + wire::packed_bytes(count, code_bits());
  }

 protected:
  virtual int code_bits() const = 0;
  // Scale of the bucket [b, e) as stored (float32).
  virtual float scale_of(const double* v, std::size_t b, std::size_t e) const = 0;
  // Code of v given the stored scale; `rng` for the stochastic ones.
  virtual std::uint32_t code_of(double v, double scale, SplitMix64& rng) const = 0;
  // Value of `code` (already validated) given the scale.
  virtual double value_of(std::uint32_t code, double scale) const = 0;
  // Whether a code read from the wire is on the grid.
  virtual bool valid_code(std::uint32_t code) const = 0;

  void encode_body(const double* v, std::size_t n, DType, std::uint64_t seed,
                   std::vector<std::uint8_t>& out) const override {
    std::vector<float> scales;
    for_each_bucket(n, bucket_,
                    [&](std::size_t b, std::size_t e) { scales.push_back(scale_of(v, b, e)); });
    for (float s : scales) wire::put_f32(out, s);
    SplitMix64 rng(seed);
    wire::BitWriter bits(out);
    std::size_t bucket_index = 0;
    for_each_bucket(n, bucket_, [&](std::size_t b, std::size_t e) {
      const double scale = scales[bucket_index++];
      for (std::size_t i = b; i < e; ++i) bits.put(code_of(v[i], scale, rng), code_bits());
    });
    bits.flush();
  }

  void decode_body(const std::uint8_t* body, std::size_t n, DType, double* out) const override {
    const std::size_t buckets = bucket_count(n, bucket_);
    wire::BitReader bits(body + 4 * buckets, wire::packed_bytes(n, code_bits()));
    std::size_t bucket_index = 0;
    for_each_bucket(n, bucket_, [&](std::size_t b, std::size_t e) {
      const double scale = wire::get_f32(body + 4 * bucket_index++);
      for (std::size_t i = b; i < e; ++i) {
        const std::uint32_t code = bits.get(code_bits());
        if (!valid_code(code))
          throw DecodeError(
              fmt::format("{}: element {} has code {}, beyond the grid", spec(), i, code));
        out[i] = value_of(code, scale);
      }
    });
  }

  std::string bucket_suffix() const { return fmt::format("bucket={}", bucket_); }
  std::size_t bucket_;
};

// QSGD: code = level << 1 | sign, level in 0..s by unbiased stochastic rounding.
class Qsgd final : public Bucketed {
 public:
  Qsgd(std::uint32_t levels, std::size_t bucket, bool max_norm)
      : Bucketed(bucket), levels_(levels), level_bits_(bit_width(levels)), max_norm_(max_norm) {}
  std::string spec() const override {
    return fmt::format("qsgd:s={},{},norm={}", levels_, bucket_suffix(), max_norm_ ? "max" : "l2");
  }
  bool unbiased() const override { return true; }

 protected:
  std::uint8_t kind() const override { return kQsgd; }
  std::uint8_t parameter(DType) const override { return static_cast<std::uint8_t>(level_bits_); }
  int code_bits() const override { return level_bits_ + 1; }
  float scale_of(const double* v, std::size_t b, std::size_t e) const override {
    double norm = 0.0;
    if (max_norm_) {
      for (std::size_t i = b; i < e; ++i) norm = std::max(norm, std::fabs(v[i]));
      if (std::any_of(v + b, v + e, [](double x) { return std::isnan(x); }))
        norm = std::numeric_limits<double>::quiet_NaN();
    } else {
      for (std::size_t i = b; i < e; ++i) norm += v[i] * v[i];
      norm = std::sqrt(norm);
    }
    return round_up_to_float(norm);
  }
  std::uint32_t code_of(double v, double scale, SplitMix64& rng) const override {
    const std::uint32_t sign = std::signbit(v) ? 1u : 0u;
    const double u = rng.uniform();  // drawn for every element: streams do not depend on values
    if (!(scale > 0) || !std::isfinite(scale)) return sign;
    const double r = levels_ * std::fabs(v) / scale;  // in [0, s] since scale >= |v|
    if (!(r < levels_)) return (levels_ << 1) | sign;
    const auto floor_level = static_cast<std::uint32_t>(r);
    const std::uint32_t level = floor_level + (u < r - floor_level ? 1u : 0u);
    return (level << 1) | sign;
  }
  double value_of(std::uint32_t code, double scale) const override {
    const double magnitude = scale * (code >> 1) / levels_;
    return (code & 1u) ? -magnitude : magnitude;
  }
  bool valid_code(std::uint32_t code) const override { return (code >> 1) <= levels_; }

 private:
  std::uint32_t levels_;
  int level_bits_;
  bool max_norm_;
};

// Deterministic K-bit: code = round(L v / scale) + L in 0..2L.
class Kbit final : public Bucketed {
 public:
  Kbit(int bits, std::size_t bucket)
      : Bucketed(bucket), bits_(bits), half_range_((1u << (bits - 1)) - 1) {}
  std::string spec() const override {
    return fmt::format("kbit:bits={},{}", bits_, bucket_suffix());
  }
  bool unbiased() const override { return false; }

 protected:
  std::uint8_t kind() const override { return kKbit; }
  std::uint8_t parameter(DType) const override { return static_cast<std::uint8_t>(bits_); }
  int code_bits() const override { return bits_; }
  float scale_of(const double* v, std::size_t b, std::size_t e) const override {
    double m = 0.0;
    for (std::size_t i = b; i < e; ++i) m = std::max(m, std::fabs(v[i]));
    return round_up_to_float(m);
  }
  std::uint32_t code_of(double v, double scale, SplitMix64&) const override {
    const double L = half_range_;
    if (!(scale > 0) || !std::isfinite(scale) || std::isnan(v)) return half_range_;
    const double c = std::clamp(std::nearbyint(v / scale * L), -L, L);
    return static_cast<std::uint32_t>(static_cast<std::int64_t>(c) + half_range_);
  }
  double value_of(std::uint32_t code, double scale) const override {
    const double c = static_cast<double>(code) - half_range_;
    return scale * c / half_range_;
  }
  bool valid_code(std::uint32_t code) const override { return code <= 2 * half_range_; }

 private:
  int bits_;
  std::uint32_t half_range_;
};

// Sign with scale ||v||_1 / d per bucket: bit 1 means negative.
class Sign final : public Bucketed {
 public:
  explicit Sign(std::size_t bucket) : Bucketed(bucket) {}
  std::string spec() const override { return "sign:" + bucket_suffix(); }
  bool unbiased() const override { return false; }

 protected:
  std::uint8_t kind() const override { return kSign; }
  int code_bits() const override { return 1; }
  float scale_of(const double* v, std::size_t b, std::size_t e) const override {
    double sum = 0.0;
    for (std::size_t i = b; i < e; ++i) sum += std::fabs(v[i]);
    return static_cast<float>(sum / static_cast<double>(e - b));
  }
  std::uint32_t code_of(double v, double, SplitMix64&) const override {
    return std::signbit(v) ? 1u : 0u;
  }
  double value_of(std::uint32_t code, double scale) const override { return code ? -scale : scale; }
  bool valid_code(std::uint32_t) const override { return true; }
};

// ---------------------------------------------------------------- sparsifiers

// k indices (uint32, strictly increasing) then k float32 values.
class Sparse : public Compressor {
 public:
  Sparse(double ratio, std::size_t k) : ratio_(ratio), fixed_k_(k) {}
  std::size_t encoded_size(std::size_t count, DType) const override {
    return kHeaderBytes + 8 * kept(count);
  }
  // Coordinates kept out of `count`.
  std::size_t kept(std::size_t count) const {
    if (count == 0) return 0;
    if (fixed_k_ > 0) return std::min(fixed_k_, count);
    const auto k = static_cast<std::size_t>(std::ceil(ratio_ * static_cast<double>(count)));
    return std::clamp<std::size_t>(k, 1, count);
  }

 protected:
  std::string parameter_text() const {
    return fixed_k_ > 0 ? fmt::format("k={}", fixed_k_) : fmt::format("ratio={}", ratio_);
  }
  // Sorted indices of the kept coordinates, and the factor applied to their values.
  virtual std::vector<std::uint32_t> select(const double* v, std::size_t n, std::size_t k,
                                            std::uint64_t seed) const = 0;
  virtual double value_scale(std::size_t n, std::size_t k) const = 0;

  void encode_body(const double* v, std::size_t n, DType, std::uint64_t seed,
                   std::vector<std::uint8_t>& out) const override {
    const std::size_t k = kept(n);
    const std::vector<std::uint32_t> indices = select(v, n, k, seed);
    const double factor = value_scale(n, k);
    for (std::uint32_t i : indices) wire::put_u32(out, i);
    for (std::uint32_t i : indices) wire::put_f32(out, static_cast<float>(v[i] * factor));
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType, double* out) const override {
    const std::size_t k = kept(n);
    std::fill(out, out + n, 0.0);
    std::int64_t previous = -1;
    for (std::size_t j = 0; j < k; ++j) {
      const std::uint32_t index = wire::get_u32(body + 4 * j);
      if (index >= n || static_cast<std::int64_t>(index) <= previous)
        throw DecodeError(fmt::format(
            "{}: index {} of {} is {}: indices must increase strictly and stay below {}", spec(), j,
            k, index, n));
      previous = index;
      out[index] = wire::get_f32(body + 4 * k + 4 * j);
    }
  }

  double ratio_;
  std::size_t fixed_k_;
};

class RandomK final : public Sparse {
 public:
  using Sparse::Sparse;
  std::string spec() const override { return "randk:" + parameter_text(); }
  bool unbiased() const override { return true; }

 protected:
  std::uint8_t kind() const override { return kRandk; }
  // Selection sampling (Knuth's algorithm S): every k-subset equally likely, already sorted.
  std::vector<std::uint32_t> select(const double*, std::size_t n, std::size_t k,
                                    std::uint64_t seed) const override {
    SplitMix64 rng(seed);
    std::vector<std::uint32_t> chosen;
    chosen.reserve(k);
    for (std::size_t i = 0; i < n && chosen.size() < k; ++i)
      if (rng.uniform() * static_cast<double>(n - i) < static_cast<double>(k - chosen.size()))
        chosen.push_back(static_cast<std::uint32_t>(i));
    return chosen;
  }
  double value_scale(std::size_t n, std::size_t k) const override {
    return static_cast<double>(n) / static_cast<double>(k);
  }
};

class TopK final : public Sparse {
 public:
  using Sparse::Sparse;
  std::string spec() const override { return "topk:" + parameter_text(); }
  bool unbiased() const override { return false; }

 protected:
  std::uint8_t kind() const override { return kTopk; }
  std::vector<std::uint32_t> select(const double* v, std::size_t n, std::size_t k,
                                    std::uint64_t) const override {
    std::vector<std::uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0u);
    // NaN counts as the largest magnitude so that the order stays a strict weak ordering.
    auto magnitude = [&](std::uint32_t i) {
      return std::isnan(v[i]) ? std::numeric_limits<double>::infinity() : std::fabs(v[i]);
    };
    auto larger = [&](std::uint32_t a, std::uint32_t b) {
      const double ma = magnitude(a), mb = magnitude(b);
      return ma > mb || (ma == mb && a < b);
    };
    if (k < n)
      std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                       larger);
    order.resize(k);
    std::sort(order.begin(), order.end());
    return order;
  }
  double value_scale(std::size_t, std::size_t) const override { return 1.0; }
};

// ---------------------------------------------------------------- spec parsing

struct Spec {
  std::string text;  // as given, for messages
  std::string name;
  std::map<std::string, std::string> values;
  std::vector<std::string> used;

  [[noreturn]] void fail(const std::string& problem) const {
    throw InvalidArgument(fmt::format("compressor '{}': {}", text, problem));
  }
  bool has(const std::string& key) const { return values.count(key) > 0; }
  const std::string* get(const std::string& key) {
    used.push_back(key);
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t lowest,
                       std::int64_t highest, bool required = false) {
    const std::string* v = get(key);
    if (!v) {
      if (required) fail(fmt::format("missing {}=<integer>", key));
      return fallback;
    }
    std::size_t consumed = 0;
    std::int64_t out = 0;
    try {
      out = std::stoll(*v, &consumed);
    } catch (const std::exception&) {
      consumed = 0;
    }
    if (consumed == 0 || consumed != v->size())
      fail(fmt::format("{}='{}' is not an integer", key, *v));
    if (out < lowest || out > highest)
      fail(fmt::format("{}={} is out of range [{}, {}]", key, out, lowest, highest));
    return out;
  }
  double real(const std::string& key) {
    const std::string& v = *get(key);
    std::size_t consumed = 0;
    double out = 0;
    try {
      out = std::stod(v, &consumed);
    } catch (const std::exception&) {
      consumed = 0;
    }
    if (consumed == 0 || consumed != v.size() || !std::isfinite(out))
      fail(fmt::format("{}='{}' is not a number", key, v));
    return out;
  }
  // Rejects keys the compressor does not read.
  void finish() const {
    for (const auto& [key, value] : values)
      if (std::find(used.begin(), used.end(), key) == used.end())
        fail(fmt::format(
            "unknown key '{}' for {} (keys: {})", key, name,
            used.empty() ? std::string("none") : fmt::format("{}", fmt::join(used, ", "))));
  }
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

Spec parse_spec(const std::string& text) {
  Spec spec;
  spec.text = text;
  const auto colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  std::transform(spec.name.begin(), spec.name.end(), spec.name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (spec.name.empty()) spec.fail("empty compressor name");
  if (colon == std::string::npos) return spec;
  const std::string rest = text.substr(colon + 1);
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = rest.find(',', start);
    const std::string item =
        trim(rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const auto eq = item.find('=');
    if (eq == std::string::npos || trim(item.substr(0, eq)).empty() ||
        trim(item.substr(eq + 1)).empty())
      spec.fail(fmt::format("'{}' is not of the form key=value", item));
    const std::string key = trim(item.substr(0, eq));
    if (!spec.values.emplace(key, trim(item.substr(eq + 1))).second)
      spec.fail(fmt::format("key '{}' is given twice", key));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return spec;
}

constexpr std::int64_t kMaxBucket = std::int64_t{1} << 31;

std::size_t parse_bucket(Spec& s) {
  return static_cast<std::size_t>(s.integer("bucket", 0, 0, kMaxBucket));
}

CompressorPtr make_sparse(Spec& s, bool random) {
  const bool has_ratio = s.has("ratio"), has_k = s.has("k");
  if (has_ratio == has_k) s.fail("give exactly one of ratio=<fraction in (0, 1]> or k=<count>");
  double ratio = 0.0;
  std::size_t k = 0;
  if (has_ratio) {
    ratio = s.real("ratio");
    s.get("k");
    if (!(ratio > 0 && ratio <= 1)) s.fail(fmt::format("ratio={} is out of range (0, 1]", ratio));
  } else {
    s.get("ratio");
    k = static_cast<std::size_t>(s.integer("k", 0, 1, std::numeric_limits<std::uint32_t>::max()));
  }
  if (random) return std::make_shared<RandomK>(ratio, k);
  return std::make_shared<TopK>(ratio, k);
}

const std::vector<CompressorInfo>& infos() {
  static const std::vector<CompressorInfo> table = {
      {"none", "none", "no compression: the values as they are (float32 or float64)"},
      {"fp32", "fp32", "cast to float32 (exact for float32 values)"},
      {"fp16", "fp16", "cast to IEEE half precision, 16 bits per element"},
      {"bf16", "bf16", "cast to bfloat16, 16 bits per element"},
      {"qsgd", "qsgd:s=S[,bucket=B][,norm=l2|max]",
       "QSGD, unbiased stochastic rounding to S levels of norm/S; 1 + ceil(log2(S+1)) bits each"},
      {"kbit", "kbit:bits=K[,bucket=B]",
       "deterministic K-bit rounding to 2^K - 1 levels of max|v| (biased)"},
      {"randk", "randk:ratio=R | randk:k=K",
       "K random coordinates scaled by d/K (unbiased); 8 bytes per kept element"},
      {"topk", "topk:ratio=R | topk:k=K",
       "the K coordinates of largest magnitude (biased); 8 bytes per kept element"},
      {"sign", "sign[:bucket=B]", "1 bit per element, scale ||v||_1/d (biased)"},
  };
  return table;
}

}  // namespace

// ---------------------------------------------------------------- Compressor

template <typename T>
std::vector<std::uint8_t> Compressor::encode_as(const T* values, std::size_t count,
                                                std::uint64_t seed) const {
  constexpr DType source = dtype_of<T>();
  if (count > std::numeric_limits<std::uint32_t>::max())
    throw InvalidArgument(
        fmt::format("{}: cannot encode {} elements: at most 2^32 - 1", spec(), count));
  if (count > 0 && values == nullptr)
    throw InvalidArgument(fmt::format("{}: null buffer with {} elements", spec(), count));
  std::vector<double> widened;
  const double* v = nullptr;
  if constexpr (std::is_same_v<T, double>) {
    v = values;
  } else {
    widened.assign(values, values + count);
    v = widened.data();
  }
  std::vector<std::uint8_t> out;
  const std::size_t expected = encoded_size(count, source);
  out.reserve(expected);
  out.push_back(kind());
  out.push_back(parameter(source));
  wire::put_u32(out, static_cast<std::uint32_t>(count));
  encode_body(v, count, source, seed, out);
  if (out.size() != expected)
    throw Error(fmt::format("{}: internal error: encoded {} bytes, the format says {}", spec(),
                            out.size(), expected));
  return out;
}

std::vector<std::uint8_t> Compressor::encode(const float* values, std::size_t count,
                                             std::uint64_t seed) const {
  return encode_as(values, count, seed);
}

std::vector<std::uint8_t> Compressor::encode(const double* values, std::size_t count,
                                             std::uint64_t seed) const {
  return encode_as(values, count, seed);
}

std::size_t Compressor::check_header(const std::uint8_t* bytes, std::size_t size,
                                     DType& source) const {
  if (size < kHeaderBytes || bytes == nullptr)
    throw DecodeError(fmt::format("{}: truncated encoding: {} bytes, the header alone has {}",
                                  spec(), size, kHeaderBytes));
  if (bytes[0] != kind())
    throw DecodeError(fmt::format("{}: the bytes are a '{}' encoding (kind {}), not '{}'", spec(),
                                  kind_name(bytes[0]), bytes[0], kind_name(kind())));
  if (bytes[1] == parameter(DType::kFloat32)) {
    source = DType::kFloat32;
  } else if (bytes[1] == parameter(DType::kFloat64)) {
    source = DType::kFloat64;
  } else {
    throw DecodeError(fmt::format("{}: header parameter {} does not match this compressor's {}",
                                  spec(), bytes[1], parameter(DType::kFloat32)));
  }
  const std::size_t count = wire::get_u32(bytes + 2);
  const std::size_t expected = encoded_size(count, source);
  if (size != expected)
    throw DecodeError(fmt::format("{}: an encoding of {} elements has {} bytes, got {}{}", spec(),
                                  count, expected, size, size < expected ? " (truncated)" : ""));
  return count;
}

std::size_t Compressor::decoded_count(const std::uint8_t* bytes, std::size_t size) const {
  DType source;
  return check_header(bytes, size, source);
}

template <typename T>
void Compressor::decode_as(const std::uint8_t* bytes, std::size_t size, T* out,
                           std::size_t count) const {
  DType source;
  const std::size_t encoded_count = check_header(bytes, size, source);
  if (encoded_count != count)
    throw DecodeError(fmt::format("{}: the encoding holds {} elements, the output has room for {}",
                                  spec(), encoded_count, count));
  if (count > 0 && out == nullptr)
    throw InvalidArgument(
        fmt::format("{}: decode into a null buffer of {} elements", spec(), count));
  if constexpr (std::is_same_v<T, double>) {
    decode_body(bytes + kHeaderBytes, count, source, out);
  } else {
    std::vector<double> wide(count);
    decode_body(bytes + kHeaderBytes, count, source, wide.data());
    for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(wide[i]);
  }
}

void Compressor::decode(const std::uint8_t* bytes, std::size_t size, float* out,
                        std::size_t count) const {
  decode_as(bytes, size, out, count);
}

void Compressor::decode(const std::uint8_t* bytes, std::size_t size, double* out,
                        std::size_t count) const {
  decode_as(bytes, size, out, count);
}

// ---------------------------------------------------------------- factory

CompressorPtr make_compressor(const std::string& text) {
  Spec s = parse_spec(text);
  CompressorPtr out;
  if (s.name == "none" || s.name == "identity") {
    out = std::make_shared<Identity>();
  } else if (s.name == "fp32") {
    out = std::make_shared<Fp32>();
  } else if (s.name == "fp16") {
    out = std::make_shared<SmallFloat>(kFp16, 10, 5);
  } else if (s.name == "bf16") {
    out = std::make_shared<SmallFloat>(kBf16, 7, 8);
  } else if (s.name == "qsgd") {
    const auto levels = s.integer("s", 0, 1, 32767, /*required=*/true);
    const std::size_t bucket = parse_bucket(s);
    const std::string* norm = s.get("norm");
    if (norm && *norm != "l2" && *norm != "max")
      s.fail(fmt::format("norm='{}': expected l2 or max", *norm));
    out =
        std::make_shared<Qsgd>(static_cast<std::uint32_t>(levels), bucket, norm && *norm == "max");
  } else if (s.name == "kbit") {
    const auto bits = s.integer("bits", 0, 2, 16, /*required=*/true);
    out = std::make_shared<Kbit>(static_cast<int>(bits), parse_bucket(s));
  } else if (s.name == "randk" || s.name == "topk") {
    out = make_sparse(s, s.name == "randk");
  } else if (s.name == "sign") {
    out = std::make_shared<Sign>(parse_bucket(s));
  } else {
    std::vector<std::string> names;
    for (const auto& info : infos()) names.push_back(info.name);
    s.fail(fmt::format("unknown compressor '{}'; valid: {}", s.name, fmt::join(names, ", ")));
  }
  s.finish();
  return out;
}

std::vector<CompressorInfo> list_compressors() {
  return infos();
}

std::uint64_t derive_seed(std::uint64_t base, int rank, std::int64_t iteration,
                          std::uint64_t purpose) {
  SplitMix64 mix(base ^ 0x243F6A8885A308D3ULL);
  std::uint64_t h = mix.next();
  for (std::uint64_t part :
       {static_cast<std::uint64_t>(rank), static_cast<std::uint64_t>(iteration), purpose}) {
    SplitMix64 step(h ^ (part * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL));
    h = step.next();
  }
  return h;
}

}  // namespace decent::compress
