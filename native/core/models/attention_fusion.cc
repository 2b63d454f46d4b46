#include "attention_fusion.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>

#include <atomic>
#include <vector>

#include "../kernels/fused_attention.h"
#include "../runtime/error.h"

namespace torchedit {

namespace {
using torch::jit::Node;
using torch::jit::Value;

std::atomic<bool>& enabledFlag() {
  static std::atomic<bool> on{true};
  return on;
}

// A constant number, or a traced Python number (a 0-dim tensor constant).
std::optional<double> constantNumber(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (!iv) return std::nullopt;
  if (iv->isDouble()) return iv->toDouble();
  if (iv->isInt()) return static_cast<double>(iv->toInt());
  if (iv->isTensor()) {
    const at::Tensor& t = iv->toTensor();
    if (t.defined() && t.numel() == 1 && t.dim() == 0) return t.item<double>();
  }
  return std::nullopt;
}

bool isKind(Node* n, const char* qualified) { return n->kind() == c10::Symbol::fromQualString(qualified); }
bool isMatmul(Node* n) { return isKind(n, "aten::matmul") || isKind(n, "aten::bmm"); }
bool onlyUse(Value* v, Node* user) { return v->uses().size() == 1 && v->uses()[0].user == user; }

struct Site {
  Node* pv;  // the product with v, whose output the fused op replaces
  Value *q, *kt, *v;
  double scale;       // a constant scale, or
  Value* scaleValue;  // a float computed in the graph (traced from shapes: (C // h) ** -0.5)
  bool divide;        // scaleValue divides the scores
};

// A float the graph computes: usable as the op's `float scale` argument as it is. (A tensor scale
// takes the op's tensor overload, which checks at run time that it is one number.)
bool isFloatValue(Value* v) { return v->type()->kind() == c10::TypeKind::FloatType; }

// softmax(scores(q, kt)·s, -1) · v, or nothing when `softmax` is not such a chain.
std::optional<Site> match(Node* softmax) {
  if (!isKind(softmax, "aten::softmax") || softmax->inputs().size() != 3) return std::nullopt;
  auto dim = torch::jit::toIValue(softmax->input(1));
  auto dtype = torch::jit::toIValue(softmax->input(2));
  if (!dim || !dim->isInt() || dim->toInt() != -1 || !dtype || !dtype->isNone()) return std::nullopt;
  // The probabilities must feed the product with v and nothing else (format-2 maps keep theirs).
  Value* probs = softmax->output();
  if (probs->uses().size() != 1) return std::nullopt;
  Node* pv = probs->uses()[0].user;
  if (!isMatmul(pv) || pv->input(0) != probs) return std::nullopt;

  Value* scores = softmax->input(0);
  if (!onlyUse(scores, softmax)) return std::nullopt;
  Node* producer = scores->node();
  double scale = 1.0;
  Value* scaleValue = nullptr;
  bool divide = false;
  if (isKind(producer, "aten::baddbmm") && producer->inputs().size() == 5) {
    auto beta = constantNumber(producer->input(3));
    auto alpha = constantNumber(producer->input(4));
    if (!beta || *beta != 0.0 || !alpha) return std::nullopt;
    return Site{pv, producer->input(1), producer->input(2), pv->input(1), *alpha, nullptr, false};
  }
  if ((isKind(producer, "aten::mul") || isKind(producer, "aten::div")) && producer->inputs().size() == 2) {
    const bool div = isKind(producer, "aten::div");
    Value* product = producer->input(0);
    Value* factor = producer->input(1);
    if (!div && !isMatmul(product->node())) std::swap(product, factor);  // s · (q kᵀ)
    auto s = constantNumber(factor);
    if (s) {
      if (div && *s == 0.0) return std::nullopt;
      scale = div ? 1.0 / *s : *s;
    } else if (isFloatValue(factor) || factor->type()->kind() == c10::TypeKind::TensorType) {
      scaleValue = factor;
      divide = div;
    } else {
      return std::nullopt;
    }
    if (!onlyUse(product, producer)) return std::nullopt;
    producer = product->node();
  }
  if (!isMatmul(producer)) return std::nullopt;
  return Site{pv, producer->input(0), producer->input(1), pv->input(1), scale, scaleValue, divide};
}

void collect(torch::jit::Block* block, std::vector<Site>& sites) {
  for (Node* n : block->nodes()) {
    for (torch::jit::Block* inner : n->blocks()) collect(inner, sites);
    if (auto site = match(n)) sites.push_back(*site);
  }
}
}  // namespace

int64_t fuseAttention(const std::shared_ptr<torch::jit::Graph>& graph) {
  // Dead nodes count as uses: a traced submodule that computed the head-averaged probabilities and
  // dropped them (tinysd's attention without maps returns them in a tuple its caller indexes)
  // would look like a maps site. Tuples built and taken apart in the graph go first, then the dead code.
  torch::jit::LowerSimpleTuples(graph);
  torch::jit::EliminateDeadCode(graph);
  std::vector<Site> sites;
  collect(graph->block(), sites);
  const auto op = c10::Symbol::fromQualString(kernels::fusedAttentionOpName());
  for (const Site& site : sites) {
    torch::jit::WithInsertPoint at(site.pv);
    // insert() matches the registered schema, so a wrong signature fails here, not at run time.
    Value* fused;
    if (site.scaleValue && site.scaleValue->type()->kind() == c10::TypeKind::TensorType) {
      fused = graph->insert(op, {site.q, site.kt, site.v, site.scaleValue, site.divide});
    } else {
      Value* scale = site.scaleValue ? site.scaleValue : graph->insertConstant(site.scale);
      if (site.scaleValue && site.divide) scale = graph->insert(c10::Symbol::fromQualString("aten::div"), {1.0, scale});
      fused = graph->insert(op, {site.q, site.kt, site.v, scale});
    }
    fused->setType(site.pv->output()->type());
    site.pv->output()->replaceAllUsesWith(fused);
  }
  if (!sites.empty()) torch::jit::EliminateDeadCode(graph);  // the scores, softmax and empty() go
  return static_cast<int64_t>(sites.size());
}

std::optional<FusedModule> fuseAttentionForInference(const torch::jit::Module& module) {
  // clone(inplace = true) gives new class types with copied method graphs but the same attribute
  // values (parameter tensors); clone(false) would deep-copy every weight. Rewriting the clone's
  // graphs leaves the source module (and its training path) as it was.
  torch::jit::Module clone = module.clone(/*inplace=*/true);
  auto& forward = torch::jit::toGraphFunction(clone.get_method("forward").function());
  std::shared_ptr<torch::jit::Graph> graph = forward.graph();
  torch::jit::Inline(*graph);  // attention lives in submodules' methods
  int64_t sites = fuseAttention(graph);
  if (sites == 0) return std::nullopt;
  return FusedModule{std::move(clone), sites};
}

void setFusedAttentionEnabled(bool on) { enabledFlag().store(on); }
bool fusedAttentionEnabled() { return enabledFlag().load(); }

}  // namespace torchedit
