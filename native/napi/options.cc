#include "options.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "convert.h"
#include "errors.h"

namespace torchedit::napi {

namespace {

// One options object and its path in the call ("options", "options.concepts[0]") for messages.
class Fields {
 public:
  Fields(Napi::Env env, Napi::Value value, std::string path) : env_(env), path_(std::move(path)) {
    if (!value.IsObject() || value.IsArray()) fail("", "an object", value);
    object_ = value.As<Napi::Object>();
  }

  int64_t integer(const char* key) const {
    Napi::Value v = get(key, "an integer", &Napi::Value::IsNumber);
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(std::abs(d) <= 9007199254740991.0) || std::trunc(d) != d)
      fail(key, "an integer", v);  // safe integers; NaN fails
    return static_cast<int64_t>(d);
  }
  double number(const char* key) const {
    return get(key, "a number", &Napi::Value::IsNumber).As<Napi::Number>().DoubleValue();
  }
  bool boolean(const char* key) const {
    return get(key, "a boolean", &Napi::Value::IsBoolean).As<Napi::Boolean>().Value();
  }
  std::string string(const char* key) const {
    return get(key, "a string", &Napi::Value::IsString).As<Napi::String>().Utf8Value();
  }
  // The index of the field's value in `allowed`.
  size_t oneOf(const char* key, std::initializer_list<const char*> allowed) const {
    Napi::Value v = get(key, "a string", &Napi::Value::IsString);
    std::string value = v.As<Napi::String>().Utf8Value(), expected = "one of";
    size_t i = 0;
    for (const char* a : allowed) {
      if (value == a) return i;
      expected += std::string(i++ ? ", '" : " '") + a + "'";
    }
    fail(key, expected.c_str(), v);
  }
  uint64_t seed(const char* key) const { return toSeed(env_, object_.Get(key), name(key)); }
  // A field that must be present but may be null (none).
  std::optional<int64_t> optionalInteger(const char* key) const {
    if (object_.Get(key).IsNull()) return std::nullopt;
    return integer(key);
  }
  Fields object(const char* key) const { return Fields(env_, object_.Get(key), name(key)); }
  std::vector<std::string> strings(const char* key) const {
    Napi::Array items = get(key, "an array", &Napi::Value::IsArray).As<Napi::Array>();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < items.Length(); ++i) {
      Napi::Value item = items.Get(i);
      if (!item.IsString()) fail(key, "an array of strings", items);
      out.push_back(item.As<Napi::String>().Utf8Value());
    }
    return out;
  }
  std::vector<Fields> array(const char* key) const {
    Napi::Value v = get(key, "an array", &Napi::Value::IsArray);
    Napi::Array items = v.As<Napi::Array>();
    std::vector<Fields> out;
    for (uint32_t i = 0; i < items.Length(); ++i)
      out.emplace_back(env_, items.Get(i), name(key) + "[" + std::to_string(i) + "]");
    return out;
  }

 private:
  std::string name(const char* key) const { return *key ? path_ + "." + key : path_; }

  Napi::Value get(const char* key, const char* expected, bool (Napi::Value::*is)() const) const {
    Napi::Value v = object_.Get(key);
    if (!(v.*is)()) fail(key, expected, v);
    return v;
  }

  [[noreturn]] void fail(const char* key, const char* expected, Napi::Value v) const {
    const char* received = v.IsUndefined() ? "nothing" : v.IsNull() ? "null" : "a value of another type";
    throwError(env_, code::kInvalidArgument,
               std::string("Expected ") + expected + " for " + name(key) + " but received " + received);
  }

  Napi::Env env_;
  std::string path_;
  Napi::Object object_;
};

// One line per field: the readers below differ only in the fields they name.
void read(const Fields& o, ImagicStage& x) {
  x.steps = o.integer("steps");
  x.lr = o.number("lr");
}

void read(const Fields& o, ScheduleConfig& x) {
  x.numTrainTimesteps = o.integer("numTrainTimesteps");
  x.betaSchedule = o.string("betaSchedule");
  x.betaStart = o.number("betaStart");
  x.betaEnd = o.number("betaEnd");
  x.stepsOffset = o.integer("stepsOffset");
  x.setAlphaToOne = o.boolean("setAlphaToOne");
  x.timestepSpacing = o.string("timestepSpacing");
}

void read(const Fields& o, ModelConfig& x) {
  x.sampleSize = o.integer("sampleSize");
  x.latentChannels = o.integer("latentChannels");
  x.vaeScaleFactor = o.integer("vaeScaleFactor");
  x.scalingFactor = o.number("scalingFactor");
  x.predictionType = o.string("predictionType");
  Fields text = o.object("textEncoder");
  x.maxLength = text.integer("maxLength");
  x.hiddenSize = text.integer("hiddenSize");
  read(o.object("scheduler"), x.scheduler);
  x.attentionMapDownsample = o.integer("attentionMapDownsample");
}

void read(const Fields& o, TextToImageOptions& x) {
  x.steps = o.integer("steps");
  x.guidanceScale = o.number("guidanceScale");
  x.eta = o.number("eta");
  x.seed = o.seed("seed");
  x.latentHeight = o.integer("latentHeight");
  x.latentWidth = o.integer("latentWidth");
}

// The sampler's fields sit beside the others in the invert and edit options objects.
void read(const Fields& o, SamplerOptions& x) {
  x.sampler = o.oneOf("scheduler", {"ddpm", "dpmsolver++"}) == 1 ? Sampler::DPMSolverPP : Sampler::DDPM;
  x.steps = o.integer("steps");
  x.skipNoisiest = o.number("skipNoisiest");
  x.eta = o.number("eta");
}

void read(const Fields& o, InversionOptions& x) {
  read(o, x.sampler);
  x.sourceGuidanceScale = o.number("sourceGuidanceScale");
  x.seed = o.seed("seed");
}

void read(const Fields& o, EditConcept& x) {
  x.scale = o.number("scale");
  x.remove = o.boolean("remove");
  x.warmup = o.integer("warmup");
  x.cooldown = o.optionalInteger("cooldown");
  x.threshold = o.number("threshold");
  x.weight = o.number("weight");
  x.implicitMask = static_cast<ImplicitMask>(o.oneOf("implicitMask", {"off", "attention", "intersect"}));
  x.tokenCount = o.integer("tokenCount");
}

void read(const Fields& o, SemanticGuidanceOptions& x) {
  x.momentumScale = o.number("momentumScale");
  x.momentumBeta = o.number("momentumBeta");
  x.maskMode = o.oneOf("maskMode", {"channel", "sum"}) == 1 ? MaskMode::Sum : MaskMode::Channel;
  for (const Fields& c : o.array("concepts")) read(c, x.concepts.emplace_back());
}

void read(const Fields& o, EditOptions& x) {
  read(o, x.sampler);
  x.skip = o.integer("skip");
  x.guidanceScale = o.number("guidanceScale");
  read(o, x.guidance);
  x.returnMasks = o.boolean("returnMasks");
}

void read(const Fields& o, ImagicTrainOptions& x) {
  read(o.object("embedding"), x.embedding);
  read(o.object("finetune"), x.finetune);
  x.finetuneParameters = o.object("finetune").strings("parameters");
  x.seed = o.seed("seed");
}

void read(const Fields& o, ImagicEtaScoreOptions& x) {
  x.pairs = o.integer("pairs");
  x.seed = o.seed("seed");
}

void read(const Fields& o, ImagicGenerateOptions& x) {
  x.eta = o.number("eta");
  read(o.object("sampling"), x.sampling);
}

}  // namespace

template <class T>
T readOptions(Napi::Env env, Napi::Value value, const char* path) {
  T out{};
  read(Fields(env, value, path), out);
  return out;
}

template ModelConfig readOptions(Napi::Env, Napi::Value, const char*);
template TextToImageOptions readOptions(Napi::Env, Napi::Value, const char*);
template InversionOptions readOptions(Napi::Env, Napi::Value, const char*);
template SemanticGuidanceOptions readOptions(Napi::Env, Napi::Value, const char*);
template EditOptions readOptions(Napi::Env, Napi::Value, const char*);
template ImagicTrainOptions readOptions(Napi::Env, Napi::Value, const char*);
template ImagicGenerateOptions readOptions(Napi::Env, Napi::Value, const char*);
template ImagicEtaScoreOptions readOptions(Napi::Env, Napi::Value, const char*);

}  // namespace torchedit::napi
