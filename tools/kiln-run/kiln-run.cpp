//===- kiln-run.cpp - Runs a Kiln artifact on token ids ------------------===//
//
//   kiln-run model.kiln --prompt-ids 5,17,3 --max-new-tokens 24
//            [--format ids|pretty] [--dump-logits out.npy]
//   kiln-run model.kiln --prompt "text" | --prompt-file F [--stop S]...
//            [--temperature T --top-k K --top-p P --min-p M --seed S]
//            [--num-return-sequences N]
//            [--past past.npy [--past-len N]]
//   kiln-run model.kiln --perplexity text.txt | --perplexity-ids ids.txt
//            [--perplexity-window N] [--predictions out.txt]
//   kiln-run model.kiln --bench [--bench-prompt 512] [--bench-generate 128]
//            [--bench-repetitions 5] [--json]
//
// Prefills the prompt on batch row 0, then decodes one token at a time.
// --perplexity / --perplexity-ids score a text or token sequence instead
// (Perplexity.h).
// A text prompt is encoded with the artifact's tokenizer, and the generated
// text is printed as it is made (the streaming decoder holds back a token
// that ends inside a character); generation ends at an end-of-sequence id
// or a --stop string, which is not printed. Generated ids go to stdout; the
// device, throughput and errors go to stderr. Greedy decoding takes the argmax
// the kernels computed when the artifact returns one (on a GPU only that id
// comes back per step); logits are read only for sampling and --dump-logits.
// The command line is parsed in Options.cpp, --bench runs in Bench.cpp.
//
//===----------------------------------------------------------------------===//

#include "Bench.h"
#include "Options.h"

#include "kiln/runtime/ChatTemplate.h"
#include "kiln/runtime/Npy.h"
#include "kiln/runtime/Perplexity.h"
#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Session.h"
#include "kiln/runtime/Tokenizer.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iostream>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

using namespace kiln::runtime;
using namespace kiln::tools;

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "kiln-run: error: %s\n", message.c_str());
  return 1;
}

/// An output path that exists must be a regular file: writing would
/// otherwise replace a FIFO, a device node or a directory's entry.
bool checkOutputPath(const std::string &flag, const std::string &path,
                     std::string *error) {
  if (path.empty()) {
    *error = flag + ": empty path";
    return false;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    *error = flag + ": '" + path + "' exists and is not a regular file";
    return false;
  }
  return true;
}

std::string join(const std::vector<int64_t> &ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i)
    out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

/// Loads --past into the session's KV cache; returns the past length.
bool loadPast(Session &session, const Options &o, int64_t *pastLen,
              std::string *error) {
  *pastLen = 0;
  if (o.past.empty()) {
    if (o.pastLen > 0) {
      *error = "--past-len needs --past";
      return false;
    }
    return true;
  }
  std::vector<int64_t> shape;
  std::vector<float> data;
  if (!readNpy(o.past, &shape, &data, error)) {
    *error = "--past: " + *error;
    return false;
  }
  const KvCacheSpec &kv = session.artifact().kvCache();
  bool ok = shape.size() == 5 && shape[0] == 2 * kv.numLayers &&
            shape[1] == kv.batch && shape[2] == kv.numKvHeads &&
            shape[4] == kv.headDim && (o.pastLen < 0 || shape[3] == o.pastLen);
  if (!ok) {
    std::string dims;
    for (size_t i = 0; i < shape.size(); ++i)
      dims += (i ? ", " : "") + std::to_string(shape[i]);
    *error = "--past: shape [" + dims +
             "] does not match the artifact's KV cache: expected [2*layers=" +
             std::to_string(2 * kv.numLayers) +
             ", batch=" + std::to_string(kv.batch) +
             ", kv_heads=" + std::to_string(kv.numKvHeads) + ", past_len" +
             (o.pastLen >= 0 ? "=" + std::to_string(o.pastLen) : "") +
             ", head_dim=" + std::to_string(kv.headDim) + "]";
    return false;
  }
  for (size_t i = 0; i < data.size(); ++i)
    if (!std::isfinite(data[i])) {
      *error = "--past: element " + std::to_string(i) + " is " +
               (std::isnan(data[i]) ? "NaN" : "infinite") +
               "; a KV cache holds finite values";
      return false;
    }
  *pastLen = shape[3];
  return session.loadKvCache(data.data(), *pastLen, error);
}

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void reportSpeed(const char *what, size_t tokens, double time) {
  if (tokens == 0)
    return;
  std::fprintf(stderr, "kiln-run: %s: %zu tokens in %.3f ms (%.1f tok/s)\n",
               what, tokens, time * 1e3, time > 0 ? tokens / time : 0.0);
}

/// Reads token ids separated by whitespace or commas.
bool readIdsFile(const std::string &path, std::vector<int64_t> *ids,
                 std::string *error) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error =
        "--perplexity-ids: cannot read '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::string text;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    text.append(buffer, got);
  std::fclose(f);
  size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == ',') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() &&
           std::isdigit(static_cast<unsigned char>(text[end])))
      ++end;
    if (end == i || end - i > 18 ||
        (end < text.size() &&
         !std::isspace(static_cast<unsigned char>(text[end])) &&
         text[end] != ',')) {
      *error = "--perplexity-ids: '" + path + "' at byte " + std::to_string(i) +
               ": expected a token id";
      return false;
    }
    ids->push_back(std::stoll(text.substr(i, end - i)));
    i = end;
  }
  if (ids->empty()) {
    *error = "--perplexity-ids: '" + path + "' holds no token ids";
    return false;
  }
  return true;
}

int runPerplexity(const Options &o) {
  std::string error;
  std::vector<int64_t> ids;
  const bool text = !o.perplexityText.empty();
  const std::string flag = text ? "--perplexity" : "--perplexity-ids";
  if (!text && !readIdsFile(o.perplexityIds, &ids, &error))
    return fail(error);
  if (!o.predictions.empty() &&
      !checkOutputPath("--predictions", o.predictions, &error))
    return fail(error);
  Artifact::OpenOptions open;
  open.verifyWeights = !o.noVerifyWeights;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(o.model, open, &error);
  if (!artifact)
    return fail(error);
  if (text) {
    // As transformers users score a text: its tokens without BOS/EOS.
    if (artifact->tokenizer().empty())
      return fail(o.model + ": the artifact has no tokenizer; give "
                            "--perplexity-ids, or compile it with "
                            "tokenizer.json beside model.onnx");
    std::unique_ptr<Tokenizer> tokenizer =
        Tokenizer::create(artifact->tokenizer(), &error);
    if (!tokenizer)
      return fail(o.model + ": " + error);
    std::ifstream in(o.perplexityText, std::ios::binary);
    std::ostringstream contents;
    if (in)
      contents << in.rdbuf();
    if (!in || in.bad())
      return fail(flag + ": cannot read '" + o.perplexityText +
                  "': " + std::strerror(errno));
    Tokenizer::EncodeOptions encode;
    encode.addSpecialTokens = false;
    if (!tokenizer->encode(contents.str(), encode, &ids, &error))
      return fail(flag + ": '" + o.perplexityText + "': " + error);
  }
  std::unique_ptr<Session> session = Session::create(artifact, &error);
  if (!session)
    return fail(error);
  std::fprintf(stderr, "kiln-run: running on %s\n", session->device().c_str());
  int64_t window =
      o.perplexityWindow ? o.perplexityWindow : session->maxSeqLen();
  PerplexityResult r;
  auto start = std::chrono::steady_clock::now();
  if (!evaluatePerplexity(*session, ids, window, &r, &error))
    return fail(flag + ": " + error);
  double time = seconds(std::chrono::steady_clock::now() - start);
  std::printf("perplexity %.4f nll %.6f scored %lld windows %lld window %lld\n",
              r.perplexity, r.nll, static_cast<long long>(r.scored),
              static_cast<long long>(r.windows),
              static_cast<long long>(window));
  std::fflush(stdout);
  reportSpeed("perplexity", static_cast<size_t>(r.windows * window), time);
  if (!o.predictions.empty()) {
    FILE *f = std::fopen(o.predictions.c_str(), "wb");
    if (!f)
      return fail("--predictions: cannot write '" + o.predictions +
                  "': " + std::strerror(errno));
    for (size_t i = 0; i < r.predictions.size(); ++i)
      std::fprintf(f, "%d%c", r.predictions[i],
                   i + 1 == r.predictions.size() ? '\n' : ' ');
    if (std::fclose(f) != 0)
      return fail("--predictions: cannot write '" + o.predictions + "'");
  }
  return 0;
}

/// Encodes the text prompt with the artifact's tokenizer.
bool encodePrompt(const Artifact &artifact, const Options &o,
                  std::unique_ptr<Tokenizer> *tokenizer,
                  std::vector<int64_t> *prompt, std::string *error) {
  if (artifact.tokenizer().empty()) {
    *error = o.model + ": the artifact has no tokenizer; give --prompt-ids, "
                       "or compile it with tokenizer.json beside model.onnx "
                       "(or --tokenizer DIR)";
    return false;
  }
  *tokenizer = Tokenizer::create(artifact.tokenizer(), error);
  if (!*tokenizer) {
    *error = o.model + ": " + *error;
    return false;
  }
  std::string text = o.prompt;
  std::string flag = "--prompt";
  Tokenizer::EncodeOptions encode;
  if (o.chatGiven) {
    // The template writes the special tokens (BOS) itself, as transformers'
    // apply_chat_template(tokenize=True) encodes without adding any.
    flag = "--chat";
    const std::string &source = (*tokenizer)->chatTemplate();
    if (source.empty()) {
      *error = "--chat: " + o.model +
               ": the tokenizer has no chat_template (tokenizer_config.json)";
      return false;
    }
    auto chat = ChatTemplate::parse(source, error);
    std::vector<ChatMessage> messages;
    if (!o.system.empty())
      messages.push_back({"system", o.system});
    messages.push_back({"user", o.chat});
    if (!chat || !chat->render(messages, /*addGenerationPrompt=*/true,
                               (*tokenizer)->bosToken(),
                               (*tokenizer)->eosToken(), &text, error)) {
      *error = "--chat: " + *error;
      return false;
    }
    encode.addSpecialTokens = false;
  } else if (!o.promptFile.empty()) {
    flag = "--prompt-file: '" + o.promptFile + "'";
    std::ifstream in(o.promptFile, std::ios::binary);
    std::ostringstream contents;
    if (in)
      contents << in.rdbuf();
    if (!in || in.bad()) {
      *error = flag + ": cannot read: " + std::strerror(errno);
      return false;
    }
    text = contents.str();
  }
  if (!(*tokenizer)->encode(text, encode, prompt, error)) {
    *error = flag + ": " + *error;
    return false;
  }
  if (prompt->empty()) {
    *error = flag + ": the text encodes to no tokens";
    return false;
  }
  return true;
}

int run(const Options &o) {
  if (!o.perplexityIds.empty() || !o.perplexityText.empty())
    return runPerplexity(o);
  std::string error;
  std::vector<int64_t> prompt;
  if ((!o.textPrompt && !parseIds(o.promptIds, &prompt, &error)) ||
      !Sampler::validate(o.sampler, &error))
    return fail(error);
  if (!o.stops.empty() && !o.textPrompt)
    return fail("--stop needs a text prompt (--prompt or --prompt-file)");
  if (o.numSequences > 1 && (o.textPrompt || o.dumpLogitsGiven))
    return fail("--num-return-sequences above 1 needs --prompt-ids and no "
                "--dump-logits");
  for (const std::string &stop : o.stops)
    if (stop.empty())
      return fail("--stop: empty string");
  if (o.dumpLogitsGiven) {
    if (!checkOutputPath("--dump-logits", o.dumpLogits, &error))
      return fail(error);
    // Found unwritable now, not after the whole generation.
    if (FILE *f = std::fopen(o.dumpLogits.c_str(), "ab"))
      std::fclose(f);
    else
      return fail("--dump-logits: cannot write '" + o.dumpLogits +
                  "': " + std::strerror(errno));
  }
  Artifact::OpenOptions open;
  open.verifyWeights = !o.noVerifyWeights;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(o.model, open, &error);
  if (!artifact)
    return fail(error);
  std::unique_ptr<Tokenizer> tokenizer;
  if (o.textPrompt && !encodePrompt(*artifact, o, &tokenizer, &prompt, &error))
    return fail(error);
  std::unique_ptr<Session> session = Session::create(artifact, &error);
  if (!session)
    return fail(error);

  int64_t pastLen;
  if (!loadPast(*session, o, &pastLen, &error))
    return fail(error);
  std::fprintf(stderr, "kiln-run: running on %s\n", session->device().c_str());
  const int64_t context = session->maxSeqLen();
  const int64_t promptLen = static_cast<int64_t>(prompt.size());
  // The last generated token is sampled but never fed back.
  const int64_t decodeSteps = std::max<int64_t>(o.maxNewTokens - 1, 0);
  if (promptLen > context - pastLen)
    return fail(
        "prompt of " + std::to_string(promptLen) + " tokens" +
        (pastLen ? " after " + std::to_string(pastLen) + " past positions"
                 : "") +
        " does not fit the context of " + std::to_string(context) + " tokens");
  if (decodeSteps > context - pastLen - promptLen)
    return fail(std::to_string(o.maxNewTokens) + " new tokens after " +
                std::to_string(pastLen + promptLen) +
                " positions do not fit the context of " +
                std::to_string(context) + " tokens (at most " +
                std::to_string(context - pastLen - promptLen + 1) + ")");

  const int64_t vocab = session->vocabSize();
  std::vector<float> dump;
  int64_t dumpRows = 0;
  if (o.dumpLogitsGiven) {
    dump.resize((promptLen + decodeSteps) * vocab);
    session->setLogitsObserver([&](int64_t row, int64_t, const float *logits) {
      if (row == 0 && dumpRows < promptLen + decodeSteps)
        std::copy(logits, logits + vocab, &dump[dumpRows++ * vocab]);
    });
  }

  // The next token from the device (greedy, or drawn there on GPU
  // artifacts), or sampled here from the logits.
  std::optional<Sampler> sampler;
  const bool deviceArgmax =
      session->hasArgmax() &&
      (o.sampler.greedy() || (session->samplesOnDevice() && !o.sampleOnHost));
  session->setKeepLogits(!deviceArgmax);
  auto nextToken = [&]() {
    return deviceArgmax ? session->argmax(0)
                        : sampler->sample(session->logits(0));
  };
  std::vector<int64_t> generated;
  generated.reserve(o.maxNewTokens);
  for (int64_t sequence = 0; sequence < o.numSequences; ++sequence) {
    SamplerOptions so = o.sampler;
    so.seed += static_cast<uint64_t>(sequence);
    sampler.emplace(so, vocab);
    session->setSampling(0, o.sampleOnHost ? SamplerOptions() : so);
    generated.clear();
    auto start = std::chrono::steady_clock::now();
    if (!session->prefill(prompt, pastLen, &error))
      return fail(error);
    double prefillTime = seconds(std::chrono::steady_clock::now() - start);

    // Text mode: each token's text on stdout as soon as it is final.
    const bool showText = o.textPrompt && o.format == "pretty";
    std::optional<StreamDecoder> stream;
    std::optional<StopStrings> stops;
    std::vector<int64_t> eos;
    if (o.textPrompt) {
      stream.emplace(*tokenizer, /*skipSpecialTokens=*/true);
      stops.emplace(o.stops);
      eos = tokenizer->eosIds();
    }
    auto show = [&](const std::string &text) {
      if (showText && !text.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }
    };

    start = std::chrono::steady_clock::now();
    int64_t position = pastLen + promptLen;
    bool stopped = false; // at a --stop string: nothing more is shown
    for (int64_t i = 0; i < o.maxNewTokens && !stopped; ++i) {
      if (i > 0 && !session->decode(generated.back(), position++, &error))
        return fail(error);
      generated.push_back(nextToken());
      if (!o.textPrompt)
        continue;
      if (std::count(eos.begin(), eos.end(), generated.back()))
        break;
      std::string piece, shown;
      if (!stream->step(generated.back(), &piece, &error))
        return fail(error);
      stopped = stops->feed(piece, &shown);
      show(shown);
    }
    double decodeTime = seconds(std::chrono::steady_clock::now() - start);
    // Decode calls made: the first token comes from the prefill.
    const int64_t steps = std::max<int64_t>(generated.size(), 1) - 1;
    if (o.textPrompt && !stopped) {
      std::string piece, shown;
      stream->finish(&piece);
      if (!stops->feed(piece, &shown))
        stops->finish(&shown);
      show(shown);
    }

    if (showText)
      std::printf("\n");
    else if (o.format == "ids")
      std::printf("%s\n", join(generated).c_str());
    else
      std::printf("prompt:    %s\ngenerated: %s\n", join(prompt).c_str(),
                  join(generated).c_str());
    std::fflush(stdout);
    if (sequence + 1 == o.numSequences) {
      reportSpeed("prefill", prompt.size(), prefillTime);
      reportSpeed("decode", steps, decodeTime);
    }
  } // sequences

  if (o.dumpLogitsGiven &&
      !writeNpy(o.dumpLogits, dump.data(), {dumpRows, vocab}, &error))
    return fail(error);
  return 0;
}

/// kiln-run --interactive: a multi-turn chat over stdin, one user message
/// per line. Each turn renders the whole conversation with the chat template
/// and feeds only what the KV cache does not hold yet: the tokens after the
/// longest prefix shared with what it holds (the template's rendering of the
/// reply may tokenize differently from the generated ids).
int runInteractive(const Options &o) {
  std::string error;
  if (!Sampler::validate(o.sampler, &error))
    return fail(error);
  Artifact::OpenOptions open;
  open.verifyWeights = !o.noVerifyWeights;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(o.model, open, &error);
  if (!artifact)
    return fail(error);
  if (artifact->tokenizer().empty())
    return fail("--interactive: " + o.model +
                ": the artifact has no tokenizer");
  std::unique_ptr<Tokenizer> tokenizer =
      Tokenizer::create(artifact->tokenizer(), &error);
  if (!tokenizer)
    return fail(o.model + ": " + error);
  if (tokenizer->chatTemplate().empty())
    return fail("--interactive: " + o.model +
                ": the tokenizer has no chat_template (tokenizer_config.json)");
  auto chat = ChatTemplate::parse(tokenizer->chatTemplate(), &error);
  if (!chat)
    return fail("--interactive: " + error);
  std::unique_ptr<Session> session = Session::create(artifact, &error);
  if (!session)
    return fail(error);
  std::fprintf(stderr,
               "kiln-run: running on %s; one message per line, end "
               "with EOF\n",
               session->device().c_str());
  const int64_t context = session->maxSeqLen();
  Sampler sampler(o.sampler, session->vocabSize());
  const bool deviceArgmax =
      session->hasArgmax() &&
      (sampler.isGreedy() || (session->samplesOnDevice() && !o.sampleOnHost));
  session->setKeepLogits(!deviceArgmax);
  session->setSampling(0, o.sampleOnHost ? SamplerOptions() : o.sampler);
  const std::vector<int64_t> &eos = tokenizer->eosIds();
  std::vector<ChatMessage> messages;
  if (!o.system.empty())
    messages.push_back({"system", o.system});
  std::vector<int64_t> cached; // the tokens the KV cache holds, in order
  std::string line;
  for (int turn = 1; std::getline(std::cin, line); ++turn) {
    messages.push_back({"user", line});
    std::string text;
    if (!chat->render(messages, /*addGenerationPrompt=*/true,
                      tokenizer->bosToken(), tokenizer->eosToken(), &text,
                      &error))
      return fail("--interactive: turn " + std::to_string(turn) + ": " + error);
    Tokenizer::EncodeOptions encode;
    encode.addSpecialTokens = false;
    std::vector<int64_t> ids;
    if (!tokenizer->encode(text, encode, &ids, &error))
      return fail("--interactive: turn " + std::to_string(turn) + ": " + error);
    size_t shared = 0;
    while (shared < cached.size() && shared < ids.size() &&
           cached[shared] == ids[shared])
      ++shared;
    // At least the last token is fed: its logits start the reply.
    shared = std::min(shared, ids.size() - 1);
    const int64_t room = context - static_cast<int64_t>(ids.size());
    if (room < 1)
      return fail("--interactive: turn " + std::to_string(turn) + ": the " +
                  "conversation (" + std::to_string(ids.size()) +
                  " tokens) no longer fits the context of " +
                  std::to_string(context) + " tokens");
    std::vector<int64_t> fresh(ids.begin() + shared, ids.end());
    if (!session->prefill(fresh, static_cast<int64_t>(shared), &error))
      return fail(error);
    cached.assign(ids.begin(), ids.end());
    std::fprintf(stderr,
                 "kiln-run: turn %d: %zu prompt tokens, %zu reused from the "
                 "cache, %zu fed\n",
                 turn, ids.size(), shared, fresh.size());
    StreamDecoder stream(*tokenizer, /*skipSpecialTokens=*/true);
    StopStrings stops(o.stops);
    std::vector<int64_t> reply;
    int64_t position = static_cast<int64_t>(ids.size());
    const int64_t limit = std::min<int64_t>(o.maxNewTokens, room);
    bool stopped = false;
    for (int64_t i = 0; i < limit && !stopped; ++i) {
      if (i > 0) {
        if (!session->decode(reply.back(), position++, &error))
          return fail(error);
        cached.push_back(reply.back());
      }
      int64_t id = deviceArgmax ? session->argmax(0)
                                : sampler.sample(session->logits(0));
      reply.push_back(id);
      if (std::count(eos.begin(), eos.end(), id))
        break;
      std::string piece, shown;
      if (!stream.step(id, &piece, &error))
        return fail(error);
      stopped = stops.feed(piece, &shown);
      std::fwrite(shown.data(), 1, shown.size(), stdout);
      std::fflush(stdout);
    }
    if (!stopped) {
      std::string piece, shown;
      stream.finish(&piece);
      if (!stops.feed(piece, &shown))
        stops.finish(&shown);
      std::fwrite(shown.data(), 1, shown.size(), stdout);
    }
    std::printf("\n");
    std::fflush(stdout);
    messages.push_back(
        {"assistant", tokenizer->decode(reply, /*skipSpecialTokens=*/true)});
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (std::optional<int> status = parseCommandLine(argc, argv, &o))
    return *status;
  if (o.bench)
    return runBench(o.benchOptions);
  if (o.interactive)
    return runInteractive(o);
  return run(o);
}
