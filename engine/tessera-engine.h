/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-engine.h — the one public header of Tessera's engine.
 *
 * The engine runs InternLM-XComposer2-4KHD on the CPU. It is plain C11 with
 * no GLib and no GTK: it takes RGB8 pixels and returns status codes, each
 * with a message a person can act on. It never exits or aborts on bad input.
 *
 * Errors
 *   Every fallible call returns a TsrStatus (TSR_OK is 0) and, when given a
 *   TsrError, fills it with the status and a one-line message. The message
 *   says what happened and what to do; the app shows it as it is.
 *
 * Thread safety
 *   Functions that take no object are pure and may be called from any
 *   thread. The planner (tsr_hd_*) is pure arithmetic.
 *
 * Today this header covers the dynamic-resolution planner: how the model cuts
 * an image of W×H pixels into 336×336 tiles for a budget of HD-N tiles.
 */
#ifndef TESSERA_ENGINE_H
#define TESSERA_ENGINE_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Status codes and errors ========================================== */

typedef enum {
  TSR_OK = 0,
  TSR_EINVAL,      /* an argument is out of range (a programmer or user value) */
  TSR_EIO,         /* reading or writing a file failed */
  TSR_EFORMAT,     /* a file is not what it claims to be, or is damaged */
  TSR_ENOMEM,      /* memory could not be had */
  TSR_ETOOLARGE,   /* the input exceeds a documented limit */
  TSR_ECANCELLED,  /* the caller's abort callback asked to stop */
} TsrStatus;

#define TSR_ERROR_MESSAGE_MAX 512

typedef struct {
  TsrStatus status;
  char      message[TSR_ERROR_MESSAGE_MAX];
} TsrError;

/* A short constant name for a status ("invalid argument", …). */
const char *tsr_status_name (TsrStatus status);

/* Clears an error to TSR_OK with an empty message. NULL is allowed. */
void        tsr_error_clear (TsrError *err);

/* ==== Element types ===================================================== *
 *
 * The values are ggml's type ids, so they can be written to and read from
 * GGUF files as they are. Q8_0 and Q4_0 use ggml's block layouts: 32
 * values a block, one f16 scale each (34 and 18 bytes a block).
 */
typedef enum {
  TSR_DTYPE_F32  = 0,
  TSR_DTYPE_F16  = 1,
  TSR_DTYPE_Q4_0 = 2,
  TSR_DTYPE_Q8_0 = 8,
  TSR_DTYPE_BF16 = 30,
} TsrDType;

/* ==== The dynamic-resolution planner (HD_transform) ==================== *
 *
 * For an image of width×height pixels and a budget of hd_num tiles, the
 * model (model.md §6.2):
 *   1. transposes portrait images (width < height), so the long side is x;
 *   2. finds the largest column count c with c·ceil(c/ratio) ≤ hd_num;
 *   3. resizes to (336·c) × int(336·c/ratio) in that frame;
 *   4. pads white above and below to a multiple of 336 (floor half on top);
 *   5. transposes back, and cuts 336×336 tiles in row-major order;
 *   6. adds one global 336×336 view of the whole padded canvas.
 * The planner reproduces exactly that arithmetic, and maps every tile back
 * into the original image's coordinates so the UI can draw what the model
 * will see.
 */

#define TSR_TILE_SIZE    336
#define TSR_HD_NUM_MIN   1
#define TSR_HD_NUM_MAX   100
#define TSR_HD_NUM_DEFAULT 25
/* Neither side of an input image may exceed this many pixels. */
#define TSR_IMAGE_SIDE_MAX 65535
/* Image tokens per 336×336 view after the 2×2 merge: 12×12. */
#define TSR_TOKENS_PER_VIEW 144

typedef struct {
  int x, y, w, h;
} TsrRect;

typedef struct {
  double x, y, w, h;
} TsrRectF;

typedef struct {
  /* What was asked. */
  int    width, height;       /* original image, pixels */
  int    hd_num;              /* tile budget */
  /* What the model does with it, in the original orientation. */
  int    transposed;          /* 1 if the image was portrait */
  int    resized_w, resized_h;/* the image after resizing */
  int    padded_w, padded_h;  /* the canvas after white padding: 336·cols × 336·rows */
  int    pad_x, pad_y;        /* offset of the resized image on the canvas
                               * (pad_x > 0 only for portrait images) */
  int    rows, cols;          /* the tile grid */
  int    tiles;               /* rows·cols, ≤ hd_num; the global view is extra */
  int    tokens;              /* image tokens incl. separators:
                               * (tiles+1)·144 + 1 + (rows+1)·12 */
  /* Canvas pixels per original pixel along each axis. */
  double scale_x, scale_y;
} TsrHdPlan;

/* Plans width×height at budget hd_num (TSR_HD_NUM_MIN..TSR_HD_NUM_MAX).
 * Fails with TSR_EINVAL for a non-positive size or a budget out of range,
 * TSR_ETOOLARGE for a side above TSR_IMAGE_SIDE_MAX, and TSR_EFORMAT for
 * shapes the model cannot read at that budget (a 1×60000 strip resizes to
 * zero pixels across). On failure *plan is zeroed. */
TsrStatus tsr_hd_plan (int width, int height, int hd_num, TsrHdPlan *plan, TsrError *err);

/* Tile `index` (0 ≤ index < plan->tiles, row-major) on the padded canvas,
 * in canvas pixels: always a full 336×336 square. */
TsrRect   tsr_hd_tile_canvas_rect (const TsrHdPlan *plan, int index);

/* The same tile in original-image coordinates, not clipped: parts that
 * fall outside [0,width)×[0,height) are padding. */
TsrRectF  tsr_hd_tile_image_rect (const TsrHdPlan *plan, int index);

/* The original-image pixels a tile touches, clipped to the image: the
 * start edge rounded down and the end edge rounded up, in exact integer
 * arithmetic, so w, h ≥ 1 and neighbouring crops may share a pixel row
 * or column where a tile border falls inside a source pixel. */
TsrRect   tsr_hd_tile_crop (const TsrHdPlan *plan, int index);

/* Maps a canvas point to original-image coordinates (unclipped). */
void      tsr_hd_canvas_to_image (const TsrHdPlan *plan, double cx, double cy,
                                  double *ix, double *iy);

/* ==== Element types: sizes, conversions, quantisation ================== *
 *
 * Facts about the TsrDType values above, and the scalar reference code for
 * them. Later SIMD kernels are twins of these: quantising must give the
 * same bytes, dequantising the same floats.
 *
 * Block layouts are ggml's, so GGUF files interoperate (tsr-dtype.h has the
 * structs):
 *   q8_0  34 bytes per 32 values: f16 scale d, then 32 int8 quants q;
 *         x ≈ d·q. d = amax/127 (amax = largest |x|), q = roundf(x·(1/d)),
 *         halves rounded away from zero.
 *   q4_0  18 bytes per 32 values: f16 scale d, then 16 bytes; byte j holds
 *         value j in its low nibble and value j+16 in its high nibble;
 *         x ≈ d·(q − 8). d = m/−8 where m is the value of largest magnitude
 *         with its sign (the first such on ties), q = min(15, trunc(x·(1/d)
 *         + 8.5)). So m itself is exact and −m comes out as −7/8·m.
 *   The scale is computed and applied in f32; only the stored copy is
 *   rounded to f16 (round to nearest even).
 * f16 is IEEE binary16 (round to nearest even, subnormals kept, NaN stays
 * NaN); bf16 is the top half of an f32, rounded to nearest even as PyTorch
 * does, every NaN becoming 0x7fc0.
 *
 * All functions here are pure and thread-safe.
 */
#include <stdint.h>

#define TSR_QK 32   /* values per q8_0 or q4_0 block */

/* 1 if `type` (a ggml type id) is one of the TsrDType values. */
int         tsr_dtype_is_valid (int type);
/* "f32", "f16", "bf16", "q8_0", "q4_0"; NULL for other values. */
const char *tsr_dtype_name (TsrDType type);
/* The type called `name` (as above) in *type: 1, or 0 if there is none. */
int         tsr_dtype_from_name (const char *name, TsrDType *type);
/* Values per block: 1, or TSR_QK for q8_0/q4_0; 0 for an unknown type. */
size_t      tsr_dtype_block_values (TsrDType type);
/* Bytes per block: 4, 2, 2, 34, 18; 0 for an unknown type. */
size_t      tsr_dtype_block_bytes (TsrDType type);
/* Bytes taken by n values. TSR_EINVAL for an unknown type or an n that is
 * not a multiple of the block; TSR_ETOOLARGE past 2^64 bytes. */
TsrStatus   tsr_dtype_row_bytes (TsrDType type, uint64_t n, uint64_t *bytes, TsrError *err);

uint16_t    tsr_f32_to_f16 (float x);
float       tsr_f16_to_f32 (uint16_t h);
uint16_t    tsr_f32_to_bf16 (float x);
float       tsr_bf16_to_f32 (uint16_t h);

/* The scalar block kernels; n must be a multiple of TSR_QK. Input that is
 * not finite gives defined but meaningless blocks (use tsr_quantize_row
 * to have it refused). dst/src may have any alignment. */
void        tsr_quantize_row_q8_0 (const float *x, void *dst, size_t n);
void        tsr_quantize_row_q4_0 (const float *x, void *dst, size_t n);
void        tsr_dequantize_row_q8_0 (const void *src, float *y, size_t n);
void        tsr_dequantize_row_q4_0 (const void *src, float *y, size_t n);

/* n f32 values → `type` in dst (tsr_dtype_row_bytes bytes). TSR_EINVAL if
 * n does not fit the block, if a value is NaN or infinite, or if a value
 * (f16, bf16) or a block scale (q8_0, q4_0) falls outside f16/bf16 range;
 * the message names the value or block. */
TsrStatus   tsr_quantize_row (TsrDType type, const float *x, void *dst, size_t n, TsrError *err);
/* n values of `type` at src → f32. TSR_EINVAL for a bad type or count. */
TsrStatus   tsr_dequantize_row (TsrDType type, const void *src, float *y, size_t n, TsrError *err);

/* ==== The model file: GGUF ============================================= *
 *
 * Tessera keeps a model in one GGUF file (version 3; version 2 files read
 * too). DESIGN.md lists the tensor names and metadata keys Tessera writes.
 * Convention: a tensor's ne[0] is its fastest-varying dimension, so a
 * PyTorch Linear weight [out, in] is stored with ne = {in, out}.
 *
 * Reading. tsr_gguf_open maps the file read-only and checks all of its
 * structure before returning: every count, length, offset and size against
 * the file, dimension products without overflow, general.alignment (32
 * unless stated; a power of two), tensors inside the data section, at
 * aligned offsets, not overlapping, of a TsrDType. Anything wrong gives
 * TSR_EFORMAT and a message with the byte offset; an unreadable file gives
 * TSR_EIO. Afterwards nothing needs checking again: every pointer handed
 * out stays valid and in bounds until tsr_gguf_close. Tensor data is
 * aligned to general.alignment within the file, and the mapping starts on
 * a page, so in memory too (for alignments up to the page size).
 * A TsrGguf is immutable and may be read from many threads at once.
 *
 * Writing. A TsrGgufWriter collects the metadata and the tensor list
 * (names, types, shapes: everything but the data), then
 * tsr_gguf_writer_open writes the whole header to PATH.part, and the data
 * follows tensor by tensor, in the order the tensors were added, so a
 * converter never holds more than one tensor. The writer checks each
 * tensor's byte count and pads between tensors. tsr_gguf_writer_finish
 * syncs the file and renames it to PATH; any failure (a full disk
 * included: TSR_EIO) removes the partial file, and so does freeing an
 * unfinished writer. One thread at a time per writer.
 */

#define TSR_GGUF_DEFAULT_ALIGNMENT 32
#define TSR_GGUF_MAX_DIMS          4
#define TSR_GGUF_NAME_MAX          63   /* bytes in a tensor name (ggml's limit) */

/* Metadata value types, with GGUF's numbering. */
typedef enum {
  TSR_GGUF_U8 = 0, TSR_GGUF_I8 = 1, TSR_GGUF_U16 = 2, TSR_GGUF_I16 = 3,
  TSR_GGUF_U32 = 4, TSR_GGUF_I32 = 5, TSR_GGUF_F32 = 6,
  TSR_GGUF_BOOL = 7,        /* one byte, 0 or 1 */
  TSR_GGUF_STRING = 8,      /* u64 length + UTF-8 bytes, no terminator */
  TSR_GGUF_ARRAY = 9,       /* element type, u64 count, elements (arrays of
                             * arrays are refused) */
  TSR_GGUF_U64 = 10, TSR_GGUF_I64 = 11, TSR_GGUF_F64 = 12,
} TsrGgufType;

/* A string inside the mapped file: not NUL-terminated, and it may contain
 * NUL bytes (the InternLM2 vocabulary has a piece that is one NUL). */
typedef struct {
  const char *ptr;
  uint64_t    len;
} TsrGgufStr;

typedef struct {
  const char        *key;         /* NUL-terminated */
  TsrGgufType        type;
  TsrGgufType        array_type;  /* element type when type is TSR_GGUF_ARRAY */
  uint64_t           n;           /* element count; 1 for a single value */
  const void        *data;        /* the (first) value's little-endian bytes in
                                   * the file; not aligned */
  const TsrGgufStr  *strs;        /* for strings and arrays of strings: all n */
  uint64_t           offset;      /* where the entry starts in the file */
} TsrGgufKV;

typedef struct {
  const char *name;               /* NUL-terminated, ≤ TSR_GGUF_NAME_MAX bytes */
  TsrDType    type;
  uint32_t    n_dims;             /* 0 … TSR_GGUF_MAX_DIMS */
  int64_t     ne[TSR_GGUF_MAX_DIMS]; /* ne[0] fastest; unused dimensions are 1 */
  uint64_t    n_elements;
  uint64_t    offset;             /* of the data, from the start of the file */
  uint64_t    size;               /* bytes */
  const void *data;               /* in the mapping */
} TsrGgufTensor;

typedef struct TsrGguf TsrGguf;

/* Opens and checks a GGUF file; *out is NULL on failure. */
TsrStatus   tsr_gguf_open (const char *path, TsrGguf **out, TsrError *err);
/* The same over caller memory, which must outlive the TsrGguf (fuzzing,
 * embedded files). Messages call it "(memory)". */
TsrStatus   tsr_gguf_open_memory (const void *data, size_t size, TsrGguf **out, TsrError *err);
void        tsr_gguf_close (TsrGguf *gguf);

const char *tsr_gguf_path (const TsrGguf *gguf);
uint32_t    tsr_gguf_version (const TsrGguf *gguf);
uint32_t    tsr_gguf_alignment (const TsrGguf *gguf);
uint64_t    tsr_gguf_size (const TsrGguf *gguf);          /* file bytes */
uint64_t    tsr_gguf_data_offset (const TsrGguf *gguf);   /* start of the data section */

/* Metadata in file order, and by key (a hash lookup); NULL past the end or
 * when absent. */
size_t            tsr_gguf_n_kv (const TsrGguf *gguf);
const TsrGgufKV  *tsr_gguf_kv (const TsrGguf *gguf, size_t i);
const TsrGgufKV  *tsr_gguf_find_kv (const TsrGguf *gguf, const char *key);
/* "u8" … "f64"; "unknown" for other values. */
const char       *tsr_gguf_type_name (TsrGgufType type);
/* 1 if s holds exactly the bytes of the C string text. */
int               tsr_gguf_str_eq (TsrGgufStr s, const char *text);

/* Typed getters. A missing key or a value of another kind gives
 * TSR_EFORMAT with a message naming the key. Integer getters accept any
 * integer type whose value fits; float getters accept f32 and f64. */
TsrStatus   tsr_gguf_get_u32 (const TsrGguf *gguf, const char *key, uint32_t *out, TsrError *err);
TsrStatus   tsr_gguf_get_i32 (const TsrGguf *gguf, const char *key, int32_t *out, TsrError *err);
TsrStatus   tsr_gguf_get_u64 (const TsrGguf *gguf, const char *key, uint64_t *out, TsrError *err);
TsrStatus   tsr_gguf_get_i64 (const TsrGguf *gguf, const char *key, int64_t *out, TsrError *err);
TsrStatus   tsr_gguf_get_f32 (const TsrGguf *gguf, const char *key, float *out, TsrError *err);
TsrStatus   tsr_gguf_get_bool (const TsrGguf *gguf, const char *key, int *out, TsrError *err);
TsrStatus   tsr_gguf_get_str (const TsrGguf *gguf, const char *key, TsrGgufStr *out, TsrError *err);
/* Arrays. Strings: *strs points into the TsrGguf (no copy). Numbers: copied
 * and converted into out, whose length n must be the array's (see
 * tsr_gguf_find_kv(…)->n). */
TsrStatus   tsr_gguf_get_arr_str (const TsrGguf *gguf, const char *key, const TsrGgufStr **strs,
                                  uint64_t *n, TsrError *err);
TsrStatus   tsr_gguf_get_arr_f32 (const TsrGguf *gguf, const char *key, float *out, uint64_t n,
                                  TsrError *err);
TsrStatus   tsr_gguf_get_arr_i32 (const TsrGguf *gguf, const char *key, int32_t *out, uint64_t n,
                                  TsrError *err);

/* Tensors in file order, and by name (a hash lookup); NULL past the end or
 * when absent. */
size_t               tsr_gguf_n_tensors (const TsrGguf *gguf);
const TsrGgufTensor *tsr_gguf_tensor (const TsrGguf *gguf, size_t i);
const TsrGgufTensor *tsr_gguf_find_tensor (const TsrGguf *gguf, const char *name);

typedef struct TsrGgufWriter TsrGgufWriter;

TsrStatus   tsr_gguf_writer_new (TsrGgufWriter **out, TsrError *err);
/* Frees; an unfinished file is closed and removed. NULL is allowed. */
void        tsr_gguf_writer_free (TsrGgufWriter *writer);

/* Metadata, before _open; setting a key again replaces its value, in
 * place. `value` points to one host value of `type` (a uint8_t 0/1 for
 * TSR_GGUF_BOOL). Setting general.alignment (a u32 power of two) changes
 * the file's alignment. Programmer errors give TSR_EINVAL. */
TsrStatus   tsr_gguf_writer_set (TsrGgufWriter *writer, const char *key, TsrGgufType type,
                                 const void *value, TsrError *err);
TsrStatus   tsr_gguf_writer_set_u32 (TsrGgufWriter *writer, const char *key, uint32_t v, TsrError *err);
TsrStatus   tsr_gguf_writer_set_i32 (TsrGgufWriter *writer, const char *key, int32_t v, TsrError *err);
TsrStatus   tsr_gguf_writer_set_f32 (TsrGgufWriter *writer, const char *key, float v, TsrError *err);
TsrStatus   tsr_gguf_writer_set_bool (TsrGgufWriter *writer, const char *key, int v, TsrError *err);
TsrStatus   tsr_gguf_writer_set_str (TsrGgufWriter *writer, const char *key, const char *value,
                                     TsrError *err);
/* An array of n numbers or bools of type elem, in host layout. */
TsrStatus   tsr_gguf_writer_set_arr (TsrGgufWriter *writer, const char *key, TsrGgufType elem,
                                     const void *values, uint64_t n, TsrError *err);
/* An array of n strings; lens may be NULL (strlen) or give each length,
 * for strings that hold NUL bytes. */
TsrStatus   tsr_gguf_writer_set_arr_str (TsrGgufWriter *writer, const char *key,
                                         const char *const *strs, const size_t *lens, uint64_t n,
                                         TsrError *err);
/* Declares the next tensor: n_dims ≤ 4 sizes, ne[0] fastest, ne[0] a
 * multiple of the type's block. */
TsrStatus   tsr_gguf_writer_add_tensor (TsrGgufWriter *writer, const char *name, TsrDType type,
                                        uint32_t n_dims, const int64_t *ne, TsrError *err);
/* Creates PATH.part and writes the header; then the data follows. */
TsrStatus   tsr_gguf_writer_open (TsrGgufWriter *writer, const char *path, TsrError *err);
/* Appends n bytes of the current tensor's data (in any number of pieces;
 * a piece never spans two tensors). TSR_EINVAL for more bytes than the
 * tensor has left. */
TsrStatus   tsr_gguf_writer_append (TsrGgufWriter *writer, const void *data, size_t n, TsrError *err);
/* A whole tensor at once: `name` must be the one due, `size` its exact
 * byte count. */
TsrStatus   tsr_gguf_writer_write_tensor (TsrGgufWriter *writer, const char *name, const void *data,
                                          uint64_t size, TsrError *err);
/* Checks that every tensor is complete, syncs, renames PATH.part to PATH. */
TsrStatus   tsr_gguf_writer_finish (TsrGgufWriter *writer, TsrError *err);

/* ---- Tessera's model layout ------------------------------------------- *
 *
 * tsr_gguf_model_info reads the hyper-parameters of a model file and
 * checks that every tensor the architecture needs is present with the
 * shape the metadata implies. TSR_OK means Tessera can run the file (a
 * synthetic file is runnable, for benchmarks only: see `synthetic`);
 * otherwise TSR_EFORMAT says why, and *info holds what was read so far.
 */

#define TSR_ARCH_NAME_INTERNLM2_4KHD "internlm2-4khd"

typedef enum {
  TSR_ARCH_UNKNOWN = 0,
  TSR_ARCH_LLAMA,            /* a plain llama.cpp language model: text only */
  TSR_ARCH_INTERNLM2_4KHD,   /* InternLM-XComposer2-4KHD: decoder + PLoRA + vision */
} TsrArch;

/* The five linears that carry a Partial LoRA, by their GGUF names. */
enum {
  TSR_PLORA_ATTN_QKV,        /* wqkv: one A shared by Q, K, V; B split like them */
  TSR_PLORA_ATTN_OUTPUT,     /* wo */
  TSR_PLORA_FFN_GATE,        /* w1 */
  TSR_PLORA_FFN_UP,          /* w3 */
  TSR_PLORA_FFN_DOWN,        /* w2 */
  TSR_PLORA_COUNT
};
/* "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down". */
const char *tsr_plora_name (int which);

typedef struct {
  TsrArch  arch;
  char     arch_name[64];    /* general.architecture, as found */
  char     name[128];        /* general.name, or "" */
  int      synthetic;        /* tessera.synthetic: random weights, never for chat */
  /* Decoder. */
  uint32_t n_ctx;            /* 0 when the file does not say */
  uint32_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_head_dim, n_vocab;
  float    rms_eps, rope_freq_base;
  int      tied_output;      /* no output.weight: logits reuse token_embd */
  /* Partial LoRA (internlm2-4khd). */
  uint32_t plora_rank[TSR_PLORA_COUNT];
  float    plora_scale[TSR_PLORA_COUNT];
  /* Vision tower and projector (internlm2-4khd). */
  uint32_t v_image_size, v_patch_size, v_n_embd, v_n_layer, v_n_head, v_n_ff;
  float    v_eps;
  uint32_t mm_n_in;          /* projector input width: 4·v_n_embd (2×2 merge) */
  /* Tokenizer. */
  char     tok_model[32];    /* tokenizer.ggml.model */
  uint64_t tok_n;
  int64_t  bos_id, eos_id, im_start_id, im_end_id;   /* −1 when absent */
} TsrGgufModelInfo;

TsrStatus   tsr_gguf_model_info (const TsrGguf *gguf, TsrGgufModelInfo *info, TsrError *err);

/* ==== Tokenizer ========================================================= *
 *
 * SentencePiece BPE as sentencepiece encodes it (model.md §7): user-defined
 * pieces matched whole, highest-score merges with the leftmost first on
 * ties, byte fallback, identity normaliser. A tokenizer is immutable once
 * made and may be shared between threads.
 */

/* Piece types: SentencePiece's, which are also GGUF's tokenizer.ggml.token_type. */
enum {
  TSR_PIECE_NORMAL = 1,
  TSR_PIECE_UNKNOWN = 2,
  TSR_PIECE_CONTROL = 3,
  TSR_PIECE_USER_DEFINED = 4,
  TSR_PIECE_UNUSED = 5,
  TSR_PIECE_BYTE = 6,
};

typedef struct TsrTokenizer TsrTokenizer;

/* A vocabulary as arrays of n entries; piece strings are counted, not
 * NUL-terminated (InternLM2 has a piece that is a NUL byte). */
typedef struct {
  size_t              n;
  const char *const  *pieces;
  const size_t       *lens;
  const float        *scores;            /* NULL: all 0 */
  const int32_t      *types;             /* NULL: all NORMAL */
  int32_t             bos_id, eos_id;    /* −1 when absent */
  int                 add_dummy_prefix;  /* put a space before the text (llama: yes, InternLM2: no) */
} TsrVocab;

TsrStatus   tsr_tokenizer_new      (const TsrVocab *vocab, TsrTokenizer **tok, TsrError *err);
/* Reads a SentencePiece tokenizer.model (its protobuf) directly. */
TsrStatus   tsr_tokenizer_load_spm (const char *path, TsrTokenizer **tok, TsrError *err);
void        tsr_tokenizer_free     (TsrTokenizer *tok);

size_t      tsr_tokenizer_n_vocab  (const TsrTokenizer *tok);
int32_t     tsr_tokenizer_bos      (const TsrTokenizer *tok);
int32_t     tsr_tokenizer_eos      (const TsrTokenizer *tok);
/* The piece of an id (not NUL-terminated in general: use *len), or NULL. */
const char *tsr_tokenizer_piece    (const TsrTokenizer *tok, int32_t id, size_t *len);
/* The id of a piece, or −1. */
int32_t     tsr_tokenizer_find     (const TsrTokenizer *tok, const char *piece, size_t len);
/* Score and TSR_PIECE_* type of an id (0 for an id out of range). */
float       tsr_tokenizer_score    (const TsrTokenizer *tok, int32_t id);
int         tsr_tokenizer_type     (const TsrTokenizer *tok, int32_t id);
/* Whether encoding puts a space in front of the text. */
int         tsr_tokenizer_add_dummy_prefix (const TsrTokenizer *tok);

/* Encodes len bytes of UTF-8; *ids is malloc'd (free it), BOS first when
 * add_bos and the vocabulary has one. */
TsrStatus   tsr_tokenizer_encode   (const TsrTokenizer *tok, const char *text, size_t len, int add_bos,
                                    int32_t **ids, size_t *n_ids, TsrError *err);

/* Streaming decoder: push ids one at a time and get text that never ends
 * in half a UTF-8 character (the rest waits for the next id). Control
 * tokens give nothing; byte pieces give their bytes; U+2581 gives a space,
 * except the dummy prefix of the first piece. Each call writes at most cap
 * bytes and returns the number of bytes the text needs (like snprintf,
 * without a terminating NUL). */
typedef struct {
  const TsrTokenizer *tok;
  unsigned char       pending[8];
  size_t              n_pending;
  int                 at_start;
} TsrDecoder;

void        tsr_decoder_init  (TsrDecoder *dec, const TsrTokenizer *tok);
size_t      tsr_decoder_push  (TsrDecoder *dec, int32_t id, char *out, size_t cap);
/* At the end: bytes that never completed a character, as U+FFFD. */
size_t      tsr_decoder_flush (TsrDecoder *dec, char *out, size_t cap);

/* ==== Language model ==================================================== *
 *
 * The decoder of a model file: InternLM2 with Partial LoRA on image rows
 * (internlm2-4khd), or a plain llama file. A TsrLlm is immutable and may
 * be shared; a TsrLlmState holds one conversation's keys and values.
 * Rows are fed in order; each is a token id, or an embedding row (an image
 * token from the vision path, which gets the Partial LoRA).
 */

#define TSR_LLM_MAX_CONTEXT 16384

typedef struct TsrLlm TsrLlm;
typedef struct TsrLlmState TsrLlmState;
typedef struct TsrPool TsrPool;

typedef struct {
  int32_t      token;   /* used when embd is NULL */
  const float *embd;    /* n_embd values, or NULL */
  int          image;   /* an image row: the Partial LoRA applies */
} TsrLlmInput;

/* Polled between layers; returning non-zero stops the call. */
typedef struct {
  int  (*func) (void *user_data);
  void  *user_data;
} TsrLlmAbort;

TsrStatus   tsr_llm_load (const TsrGguf *gguf, TsrLlm **llm, TsrError *err);
void        tsr_llm_free (TsrLlm *llm);
const TsrGgufModelInfo *tsr_llm_info (const TsrLlm *llm);

/* Keys and values in f32 (exact to the reference). */
TsrStatus   tsr_llm_state_new  (const TsrLlm *llm, int n_ctx, TsrLlmState **state, TsrError *err);
/* The same with kv_type TSR_DTYPE_F16: half the memory, at an f16
 * rounding of every key and value. */
TsrStatus   tsr_llm_state_new_kv (const TsrLlm *llm, int n_ctx, TsrDType kv_type,
                                  TsrLlmState **state, TsrError *err);
/* Bytes held for keys and values. */
size_t      tsr_llm_state_kv_bytes (const TsrLlmState *state);
void        tsr_llm_state_free (TsrLlmState *state);
/* Rows fed so far. */
int         tsr_llm_state_pos  (const TsrLlmState *state);
/* Forgets every row from pos on (an aborted answer, a regenerated one). */
void        tsr_llm_state_rewind (TsrLlmState *state, int pos);

/* Feeds n rows; with logits non-NULL, writes the n_vocab logits after the
 * last row. On any failure, TSR_ECANCELLED included, the state is as it
 * was before the call. */
TsrStatus   tsr_llm_forward (const TsrLlm *llm, TsrLlmState *state, TsrPool *pool,
                             const TsrLlmInput *rows, int n, float *logits,
                             const TsrLlmAbort *abort, TsrError *err);

/* The tokenizer stored in a model file's metadata (tokenizer.ggml.*). */
TsrStatus   tsr_tokenizer_from_gguf (const TsrGguf *gguf, TsrTokenizer **tok, TsrError *err);

/* A worker pool for the calls above: n_threads counting the caller, 0 for
 * one per physical core. */
TsrStatus   tsr_pool_new  (int n_threads, TsrPool **pool, TsrError *err);
void        tsr_pool_free (TsrPool *pool);

/* ==== Conversion: a Hugging Face checkpoint → a model file ============ *
 *
 * tsr_convert reads the folder a user downloads from Hugging Face
 * (config.json, tokenizer.model, and the weights as PyTorch or safetensors
 * shards) and writes the GGUF file Tessera runs: the names, shapes, types
 * and metadata keys of DESIGN.md. No Python is involved.
 *
 * What it reads from config.json: the InternLM2 fields hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size, vocab_size,
 * rms_norm_eps and max_position_embeddings (or max_length) are required;
 * num_key_value_heads (default: num_attention_heads), rope_theta (10000),
 * max_length, pad_token_id and tie_word_embeddings are optional. The vision
 * tower is CLIP ViT-L/14-336 unless a "vision_config" object gives
 * hidden_size, num_hidden_layers, num_attention_heads, intermediate_size
 * (all four then required), layer_norm_eps, patch_size and image_size. A
 * PLoRA scale is alpha / r with r read from the Plora_A shapes and alpha
 * 16 for wqkv and 256 for wo, w1, w2, w3, unless "plora_alpha" {"wqkv": …,
 * "wo": …, "w1": …, "w2": …, "w3": …} says otherwise. A missing or invalid
 * field, a missing tensor and a tensor of the wrong shape each stop the
 * conversion with TSR_EFORMAT and a message naming it, before the output
 * file is created. Checkpoint tensors the model does not use
 * (post_layernorm, position_ids, rotary_emb.inv_freq, anything unknown)
 * are skipped, each kind reported once through the note callback.
 *
 * Types: `type` applies to the large matrices (embedding, output head, the
 * decoder's, vision tower's and projector's linear weights). Norms,
 * biases, the class and position embeddings, the GN tokens and all PLoRA
 * matrices stay f32; the patch embedding is f32 unless type is f16/bf16.
 * A matrix whose rows are not whole blocks of 32 stays f32 under q8_0 and
 * q4_0 (with a note). A value the chosen type cannot hold (beyond ±65504
 * in f16, say) stops the conversion with TSR_EINVAL naming the tensor.
 *
 * Memory: tensors are converted one at a time, in chunks, straight from
 * the mapped checkpoint to the file, and the checkpoint's pages are let
 * go as soon as they are used, so resident memory stays near one fused
 * wqkv plus a few tens of MB, whatever the model's size.
 *
 * Output: written to OUT.part and renamed to OUT at the very end; on any
 * failure, an abort included, the partial file is removed and an existing
 * OUT is left as it was.
 *
 * Threads: callbacks are called on the calling thread.
 */

/* `type` value: the checkpoint's own type (that of its token embedding),
 * so the default loses nothing. */
#define TSR_CONVERT_TYPE_AUTO (-1)

typedef struct {
  const char *stage;           /* "reading" (checking the checkpoint), "converting",
                                * "finishing" (syncing the file), "done" */
  const char *tensor;          /* GGUF name of the tensor being written, or NULL */
  uint64_t    tensors_done, tensors_total;
  uint64_t    bytes_done, bytes_total;   /* tensor data in the output file */
} TsrConvertProgress;

typedef struct {
  int    type;                 /* a TsrDType, or TSR_CONVERT_TYPE_AUTO */
  int    n_threads;            /* 0: one per physical core; 1: no worker threads */
  /* Called at each stage and after every few MB; may be NULL. */
  void (*progress) (const TsrConvertProgress *progress, void *user_data);
  /* Things worth telling the user that are not errors (skipped tensors,
   * a type fallback); one line each, no newline. May be NULL. */
  void (*note) (const char *message, void *user_data);
  /* Polled between steps; nonzero stops with TSR_ECANCELLED. May be NULL. */
  int  (*should_abort) (void *user_data);
  void  *user_data;
} TsrConvertParams;

/* Defaults: TSR_CONVERT_TYPE_AUTO, n_threads 0, no callbacks. */
void      tsr_convert_params_init (TsrConvertParams *params);

/* Converts the checkpoint folder hf_dir to the GGUF file out_gguf. params
 * may be NULL (the defaults). Errors: TSR_EIO (a file cannot be read or
 * written; a full disk says so), TSR_EFORMAT (config.json, tokenizer.model
 * or the weights are not what InternLM-XComposer2-4KHD needs), TSR_EINVAL
 * (bad params, or a value the chosen type cannot hold), TSR_ETOOLARGE,
 * TSR_ENOMEM, TSR_ECANCELLED. */
TsrStatus tsr_convert (const char *hf_dir, const char *out_gguf, const TsrConvertParams *params,
                       TsrError *err);

/* ==== Vision: an image → its image embeddings ========================== *
 *
 * The vision path of model.md §5–6. Every view of an image — the global
 * view, then the tiles in row-major order — goes through the CLIP ViT
 * (the last block's output, no post-layernorm, class token dropped); each
 * view's 24×24 features are merged 2×2 into 12×12 tokens (channel blocks
 * top-left, top-right, bottom-left, bottom-right) and laid out as
 *   the global view's 12 rows, each followed by sub_GN;
 *   one glb_GN;
 *   the tile grid stitched row by row across tiles, each of its 12·rows
 *   rows followed by sub_GN;
 * then every one of those tokens goes through the projector (Linear,
 * exact-erf GELU, Linear). The result has the planner's `tokens` rows of
 * the decoder's embedding width, in the order the decoder reads them.
 *
 * A TsrVision holds the vision weights of a model file. It points into the
 * TsrGguf's mapping (no copies), so the TsrGguf must stay open until the
 * TsrVision is freed. It is immutable: several threads may encode with one
 * TsrVision at once, each call with its own pool.
 *
 * Memory: the caller owns the output. A call holds the uint8 canvas and,
 * for one batch of views at a time, their activations and projector rows:
 * about 23 MB a view at full size, plus 10 MB a thread (≈ 130 MB for a
 * 4K image at HD-55 in batches of 4 on 2 threads, canvas included;
 * TsrVisionTimings.work_bytes says how much).
 *
 * Callbacks run on the calling thread. progress gets the stage "tiles",
 * done = views finished (0 at the start, then after each batch) and total
 * = views (tiles + 1). abort is polled before each batch of views and
 * before each layer; nonzero stops the call with TSR_ECANCELLED, every
 * buffer of the call freed and the TsrVision ready for the next call.
 */

/* Views per batch when TsrVisionParams.batch is 0: products of 4·577
 * rows, about 90 MB of activations and projector rows at full size. */
#define TSR_VISION_BATCH_DEFAULT 4

typedef struct TsrVision TsrVision;

typedef struct {
  int      image_size, patch_size;   /* 336, 14 */
  int      n_embd, n_layer, n_head, head_dim, n_ff;   /* ViT: 1024, 24, 16, 64, 4096 */
  float    eps;                      /* its LayerNorm epsilon */
  int      n_merge;                  /* projector input: 4·n_embd */
  int      n_out;                    /* projector output: the decoder's embedding width */
  TsrDType type;                     /* of the ViT's linear weights */
  double   flops_per_view;           /* multiply-adds ×2 through the ViT */
} TsrVisionInfo;

typedef struct {
  int    hd_num;                     /* tile budget; TSR_HD_NUM_DEFAULT */
  int    n_threads;                  /* when no pool is given: 0 = one per physical core */
  int    batch;                      /* views per batch; 0 = TSR_VISION_BATCH_DEFAULT */
  void (*progress) (const char *stage, int done, int total, void *user_data);   /* may be NULL */
  int  (*should_abort) (void *user_data);                                       /* may be NULL */
  void  *user_data;
} TsrVisionParams;

typedef struct {
  int    views, tokens, batch, threads;
  double preprocess_ms;              /* the canvas and the views cut from it */
  double vit_ms;                     /* the ViT over every view */
  double projector_ms;               /* merge, layout and the MLP */
  double total_ms;
  double ms_per_view;                /* vit_ms / views */
  double vit_gflop, projector_gflop; /* arithmetic done, for GFLOP/s */
  size_t work_bytes;                 /* memory the call allocated, output excluded */
} TsrVisionTimings;

/* Reads the vision tower and projector of an internlm2-4khd file (checked
 * by tsr_gguf_model_info, then every tensor's type). TSR_EFORMAT for a
 * file without them or with a geometry the 336-pixel tiles cannot feed. */
TsrStatus   tsr_vision_new  (const TsrGguf *gguf, TsrVision **out, TsrError *err);
void        tsr_vision_free (TsrVision *vision);
const TsrVisionInfo *tsr_vision_info (const TsrVision *vision);

/* hd_num TSR_HD_NUM_DEFAULT, n_threads 0, batch 0, no callbacks. */
void        tsr_vision_params_init (TsrVisionParams *params);

/* Encodes width×height RGB8 pixels (rows `stride` bytes apart, as a
 * TsrImage) at params->hd_num into out: plan.tokens × n_out floats, where
 * plan is tsr_hd_plan's for this size and budget; out_count is out's
 * length in floats. pool may be NULL (threads of the call's own). params
 * may be NULL (the defaults); timings may be NULL. Errors: those of
 * tsr_hd_plan, TSR_EINVAL (out too small, bad params), TSR_ENOMEM,
 * TSR_ECANCELLED; out is then unspecified. */
TsrStatus   tsr_vision_encode (const TsrVision *vision, TsrPool *pool, const unsigned char *rgb,
                               int width, int height, size_t stride,
                               const TsrVisionParams *params, float *out, size_t out_count,
                               TsrVisionTimings *timings, TsrError *err);

/* ==== Generation and chat ============================================== *
 *
 * A chat session (TsrChat) talks with an internlm2-4khd model the way the
 * official chat() does (model.md §8): the prompt of §8.2 with the default
 * meta instruction, BOS before every text segment, each image's rows
 * spliced where its question says <ImageHere>. A text-only conversation
 * uses the official text path instead ("<s>" after the BOS: [1, 1, …]).
 *
 * The session keeps its keys and values: before each question it builds
 * the whole prompt, history included, compares it row by row with what
 * the cache holds, keeps the common part and prefills only the rest. So a
 * follow-up question costs its own tokens, and the cache always holds
 * exactly what a fresh prefill of the same prompt would.
 *
 * Generation follows transformers 4.33 (the version the model's code
 * pins) with the stop ids 2 and the model's im_end id:
 *   greedy     repetition penalty, then the first largest score;
 *   sampling   repetition penalty → temperature → top-k → top-p, then a
 *              draw from the session's own generator (seeded: the same
 *              seed gives the same answer; not torch's random numbers);
 *   beams      HF beam search (see TSR_GEN_BEAM).
 * The repetition penalty (HF's: a score s of an id already seen becomes
 * s·p if s < 0, else s/p, once per id) covers the generated ids, and on
 * the text path the prompt's ids too, as HF's input_ids do there.
 * The answer is the decoded text cut at the first im_end text
 * ("[UNUSED_TOKEN_145]") with the clean-up of model.md §13.11.
 *
 * Threads: a session is used by one thread at a time; its callbacks run on
 * that thread. The TsrLlm, tokenizer and pool must outlive it; the pool is
 * not shared with other work while a call runs.
 */

/* What stands for an image in a question. */
#define TSR_CHAT_IMAGE_TAG "<ImageHere>"

typedef enum {
  TSR_GEN_GREEDY = 0,
  TSR_GEN_SAMPLE,
  /* Beam search as HF's generate(num_beams=B, do_sample=False): scores
   * are summed log-softmax values (the repetition penalty applies to
   * them); each step ranks the 2·B best continuations (3·B here, which
 * differs only where HF raises "at most B tokens … eos"); one ending in a
   * stop id becomes a finished hypothesis only if it ranks among the
   * first B, scored sum / length^length_penalty, length being that of
   * HF's input_ids (generated ids; prompt ids too on the text path);
   * early_stopping False: stop once B hypotheses are finished and the
   * best running score / current length cannot beat the worst of them;
   * at max_new_tokens the running beams join the finished ones; the best
   * wins. n_beams ≤ 1 is greedy, as in HF. Beams run one after another
   * (B one-row passes a step) and each keeps its own copy of the cache. */
  TSR_GEN_BEAM,
} TsrGenMode;

typedef struct {
  TsrGenMode mode;
  int        max_new_tokens;      /* ≥ 0 */
  float      repetition_penalty;  /* > 0; 1 turns it off */
  float      temperature;         /* sampling: > 0 */
  int        top_k;               /* sampling: 0 turns it off */
  float      top_p;               /* sampling: (0, 1]; 1 turns it off */
  uint64_t   seed;                /* sampling */
  int        n_beams;             /* beams: 1 … TSR_GEN_MAX_BEAMS */
  float      length_penalty;      /* beams */
} TsrGenParams;

#define TSR_GEN_MAX_BEAMS 16

/* Greedy, 1024 new tokens, repetition penalty 1.005; for sampling HF
 * chat()'s temperature 1.0, top-p 0.8 and transformers' top-k 50, seed
 * 0; for beams the README's 3 beams and length penalty 1.0. (HF chat()
 * samples by default; Tessera answers greedily unless asked.) */
TsrGenParams tsr_gen_default_params (void);

/* TSR_EINVAL, with the field named, for values out of range. */
TsrStatus    tsr_gen_check_params (const TsrGenParams *params, TsrError *err);

/* One token at a time, greedy or sampling, over a model's raw logits. */
typedef struct TsrSampler TsrSampler;

TsrStatus tsr_sampler_new  (const TsrGenParams *params, size_t n_vocab, TsrSampler **sampler,
                            TsrError *err);
void      tsr_sampler_free (TsrSampler *sampler);
/* Forgets the penalised ids and restarts the generator from the seed. */
void      tsr_sampler_reset (TsrSampler *sampler);
/* Adds ids to those the repetition penalty applies to (ids out of range
 * are ignored). */
void      tsr_sampler_accept (TsrSampler *sampler, const int32_t *ids, size_t n);
/* The next id for these logits (n_vocab values, changed in place). */
int32_t   tsr_sampler_next (TsrSampler *sampler, float *logits);

typedef struct TsrChat TsrChat;

/* An image of a question: pixels for the encoder (RGB8 laid out as a
 * TsrImage, "Image preprocessing" below) at budget hd_num, or its rows,
 * ready (embd non-NULL: n_rows × n_embd floats, copied). */
typedef struct {
  const unsigned char *rgb;
  int                  width, height;
  size_t               stride;
  int                  hd_num;
  const float         *embd;
  int                  n_rows;
} TsrChatImage;

/* How pixels become rows: an encoder fills *rows with n_rows × n_embd
 * floats (malloc'd; the session frees them) for `image`, polling `abort`
 * now and then. */
typedef TsrStatus (*TsrChatEncodeFunc) (void *user_data, const TsrChatImage *image,
                                        const TsrLlmAbort *abort, float **rows, int *n_rows,
                                        TsrError *err);

typedef struct {
  const char        *meta;        /* system text; NULL: the default of model.md §8.1;
                                   * "": no system block */
  int                n_ctx;       /* rows the cache can hold; 0: TSR_LLM_MAX_CONTEXT
                                   * (or the model's context, if smaller) */
  TsrDType           kv_type;     /* the cache: TSR_DTYPE_F32 or TSR_DTYPE_F16 */
  /* Images given as pixels go to encode when it is set, else through
   * vision (tsr_vision_new of the same file) on the session's pool; with
   * neither, images must come as rows. */
  TsrChatEncodeFunc  encode;
  void              *encode_data;
  const TsrVision   *vision;
} TsrChatConfig;

/* No encoder, the default meta instruction, the largest context, f32. */
void        tsr_chat_config_init (TsrChatConfig *config);
/* The default meta instruction (model.md §8.1), UTF-8. */
const char *tsr_chat_default_meta (void);

typedef struct {
  /* The answer as it is generated: `text` is what token `id` added to the
   * answer, cleaned as the final text is (so the pieces add up to
   * TsrChatAnswer.text), never half a UTF-8 character; it may be empty
   * while a character or a possible clean-up is pending, and some text
   * may come only with a later token (id −1: what the end released).
   * Beam search sends the winner once it is known. May be NULL. */
  void (*token) (int32_t id, const char *text, size_t len, void *user_data);
  /* stage "image" (done/total images), "prefill" (done/total rows to
   * run), "generate" (tokens done / max_new_tokens). May be NULL. */
  void (*progress) (const char *stage, int done, int total, void *user_data);
  /* Polled between layers while prefilling and between tokens; non-zero
   * stops the question with TSR_ECANCELLED. May be NULL. */
  int  (*should_abort) (void *user_data);
  void  *user_data;
} TsrChatCallbacks;

typedef struct {
  int    reused_tokens;     /* prompt rows found in the cache */
  int    prefill_tokens;    /* prompt rows run through the model */
  double prefill_seconds;
  int    decode_tokens;     /* tokens generated (for beams: steps) */
  double decode_seconds;
  double encode_seconds;    /* images, through the encoder */
  double prefill_tokens_per_second, decode_tokens_per_second;
} TsrChatTimings;

typedef enum {
  TSR_CHAT_STOP_END = 0,    /* a stop id (or the im_end text) */
  TSR_CHAT_STOP_LENGTH,     /* max_new_tokens */
  TSR_CHAT_STOP_CONTEXT,    /* the cache is full */
} TsrChatStop;

typedef struct {
  char          *text;      /* the final answer, NUL-terminated; malloc'd */
  int32_t       *ids;       /* the generated ids, stop id excluded; malloc'd */
  size_t         n_ids;
  TsrChatStop    stop;
  TsrChatTimings timings;
} TsrChatAnswer;

/* Frees what an answer holds and zeroes it. */
void      tsr_chat_answer_clear (TsrChatAnswer *answer);

/* A session over an internlm2-4khd model with a chat template (im_start
 * and im_end ids). TSR_EINVAL for other models and for synthetic ones;
 * TSR_ENOMEM when the cache cannot be had. config may be NULL. */
TsrStatus tsr_chat_new  (const TsrLlm *llm, const TsrTokenizer *tok, TsrPool *pool,
                         const TsrChatConfig *config, TsrChat **chat, TsrError *err);
void      tsr_chat_free (TsrChat *chat);
/* Starts a new conversation (the cache's memory is kept). */
void      tsr_chat_reset (TsrChat *chat);
int       tsr_chat_n_turns (const TsrChat *chat);
/* Rows the cache holds now. */
int       tsr_chat_n_cached (const TsrChat *chat);

/* Asks `question`, which holds one TSR_CHAT_IMAGE_TAG per image (else
 * TSR_EINVAL), and answers it. On success the turn joins the history and
 * *answer holds the answer (clear it). A prompt that does not fit the
 * context gives TSR_ETOOLARGE (HF would cut it at max_length). On
 * failure, TSR_ECANCELLED included, the conversation is as it was before
 * the call (the cache may keep rows of this prompt, ready for a new try)
 * and *answer is empty. */
TsrStatus tsr_chat_ask (TsrChat *chat, const char *question, const TsrChatImage *images,
                        int n_images, const TsrGenParams *params, const TsrChatCallbacks *cb,
                        TsrChatAnswer *answer, TsrError *err);

/* The raw logits (n_vocab) of the first answer token to `question`,
 * without answering it: the conversation does not change. */
TsrStatus tsr_chat_logits (TsrChat *chat, const char *question, const TsrChatImage *images,
                           int n_images, const TsrChatCallbacks *cb, float *logits,
                           TsrError *err);

/* Adds a finished turn to the history without running the model (a
 * conversation restored from disk): the next question prefills it. */
TsrStatus tsr_chat_add_turn (TsrChat *chat, const char *question, const TsrChatImage *images,
                             int n_images, const char *answer, TsrError *err);

/* The rows the next question would be prefilled from: the whole prompt,
 * history included, as token ids, with −1 − k standing for each row of
 * image k (counting every image of the conversation); image_rows[i] is
 * the row count of the question's image i. *rows is malloc'd. */
TsrStatus tsr_chat_prompt (TsrChat *chat, const char *question, const int *image_rows,
                           int n_images, int32_t **rows, size_t *n_rows, TsrError *err);

/* The clean-up of model.md §13.11 in place (" ." → ".", " n't" → "n't",
 * …, each replacement over the whole text in HF's order); returns the
 * new length and keeps the text NUL-terminated. */
size_t    tsr_chat_clean_up (char *text, size_t len);

/* ==== Synthetic models: random weights for benchmarks ================== *
 *
 * tsr_synth writes a model file with the tensors, shapes, types and
 * metadata a conversion of InternLM-XComposer2-4KHD-7B would have (or of
 * smaller dimensions, for tests), random weights from a fixed seed, and a
 * made-up vocabulary of n_vocab pieces (<unk>, <s>, </s>, the 256 byte
 * pieces <0x00>…<0xFF>, filler pieces, and the two chat markers as the
 * last two ids, where the real vocabulary has them). The file says
 * tessera.synthetic = true: tsr_gguf_model_info accepts it, tsr_chat_new
 * and the apps refuse to talk with it; it exists to time the engine on
 * the real shapes without the 17 GB download.
 *
 * Weights are uniform in ±√(3/ne[0]) (variance 1/fan-in, so activations
 * stay finite through every layer), norms 1, biases, embeddings added to
 * activations and GN tokens ±0.02. The bytes depend on the seed and the
 * dimensions only, not on the thread count. Tensors are generated and
 * written one chunk at a time: memory stays at a few tens of MB for any
 * size. Output goes to OUT.part, renamed at the end; any failure, an
 * abort included, removes it.
 */

typedef struct {
  TsrDType  type;             /* the large matrices, as tsr_convert's type */
  uint32_t  n_embd, n_layer, n_ff, n_head, n_head_kv, n_vocab;
  uint32_t  plora_rank[TSR_PLORA_COUNT];
  uint32_t  v_n_embd, v_n_layer, v_n_ff, v_n_head;
  uint64_t  seed;
  int       n_threads;        /* 0: one per physical core */
  /* Stages "writing", "finishing", "done"; after every few MB. May be NULL. */
  void    (*progress) (const TsrConvertProgress *progress, void *user_data);
  /* Polled between chunks; nonzero stops with TSR_ECANCELLED. May be NULL. */
  int     (*should_abort) (void *user_data);
  void     *user_data;
} TsrSynthParams;

/* The full-size model (32 × 4096, 32/8 heads, FFN 14336, vocabulary
 * 92544, PLoRA ranks 8/256, ViT-L/14-336 24 × 1024), q8_0, seed 1234. */
void      tsr_synth_params_init (TsrSynthParams *params);

/* Writes the model to out_gguf. TSR_EINVAL for dimensions the model
 * layout cannot have (heads not dividing the width, a vocabulary under
 * 261 pieces, …), TSR_EIO (a full disk says so), TSR_ENOMEM,
 * TSR_ECANCELLED. */
TsrStatus tsr_synth (const char *out_gguf, const TsrSynthParams *params, TsrError *err);

/* ==== Compute: BLAS set-up and the kernel benchmark ==================== *
 *
 * Debian's OpenBLAS picks generic SSE3 kernels on CPUs it does not know and
 * reads OPENBLAS_CORETYPE only when it loads; a program that wants the
 * right kernels sets the variable and re-executes itself before any BLAS
 * call (tessera and tessera-cli do, unless TESSERA_NO_REEXEC is set).
 */

/* The OPENBLAS_CORETYPE to re-execute with, or NULL when OpenBLAS already
 * runs the right kernels or the user chose them. */
const char *tsr_blas_better_coretype (void);

typedef struct {
  int threads;     /* 0: one per physical core */
  int isa;         /* −1: every ISA this CPU has; else a TsrIsa value */
  int type;        /* −1: every type; else a TsrDType value */
  int quick;       /* skip the shapes above 100 GFLOP */
} TsrBenchKernelsParams;

/* Times the products on the model's shapes and prints a table to out. */
TsrStatus   tsr_bench_kernels (const TsrBenchKernelsParams *params, FILE *out, TsrError *err);

/* ==== Image preprocessing ============================================== *
 *
 * From RGB8 pixels and a plan to exactly the tensors the official code
 * feeds the vision tower (model.md §6.2–6.4):
 *   1. tsr_image_hd_canvas: Pillow's BILINEAR resize to the plan's resized
 *      size — run in the transposed frame for portrait images, as the
 *      reference does, so its two passes round to uint8 in the same order —
 *      then white padding to the padded size. Byte-exact.
 *   2. tsr_image_normalize: ToTensor (/255) and CLIP's Normalize, float32
 *      [3,H,W] in C order. Exact.
 *   3. tsr_image_global_view: torch's bicubic (A = −0.75, align_corners
 *      False, no antialias, clamped borders) of the normalised canvas down
 *      to [3,336,336], float32; within 1e-6 of torch.
 *   4. tsr_image_tile: tile k (row-major, rows i = k / cols, cols j =
 *      k % cols) as a normalised [3,336,336] float32 view. Exact.
 * The views are batch items 1..tiles after the global view (item 0).
 *
 * Steps 3 and 4 read the uint8 canvas and normalise on the fly to the
 * same floats step 2 gives, so a caller that only feeds the vision tower
 * needs the canvas (3 bytes a pixel) and one view at a time, never the
 * whole float tensor (12 bytes a pixel).
 *
 * Memory: the caller owns every buffer; tsr_image_sizes says how large
 * they are. The resize streams through a few rows of working memory of its
 * own (TsrImageSizes.scratch_bytes), whatever the input size, so a
 * 20000×20000 input costs little beyond itself and the canvas.
 *
 * Threads: n_threads ≤ 0 means one per online processor; results do not
 * depend on it.
 */

/* RGB8 pixels: R, G, B bytes, rows top to bottom, `stride` bytes apart
 * (≥ 3·width; padding after a row is ignored). Sides up to
 * TSR_IMAGE_SIDE_MAX. The engine never decodes files: the app does, and
 * drops alpha without compositing, as Pillow's convert('RGB') does. */
typedef struct {
  int                  width, height;
  size_t               stride;
  const unsigned char *rgb;
} TsrImage;

typedef struct {
  size_t canvas_bytes;   /* uint8 canvas: 3 · padded_w · padded_h */
  size_t tensor_bytes;   /* float32 [3, padded_h, padded_w] */
  size_t view_bytes;     /* one float32 [3, 336, 336] view */
  size_t scratch_bytes;  /* what tsr_image_hd_canvas allocates for itself */
} TsrImageSizes;

/* Buffer sizes for a plan made by tsr_hd_plan. TSR_ETOOLARGE if they do
 * not fit in size_t; TSR_EINVAL for a plan tsr_hd_plan did not make. */
TsrStatus tsr_image_sizes (const TsrHdPlan *plan, int n_threads, TsrImageSizes *sizes,
                           TsrError *err);

/* Writes the padded canvas, tightly packed RGB8 (stride 3·padded_w), to
 * `canvas` (canvas_bytes long). The plan must be tsr_hd_plan's answer for
 * this image's size. Fails with TSR_EINVAL (bad image, stride or plan),
 * TSR_ETOOLARGE (a side above TSR_IMAGE_SIDE_MAX) or TSR_ENOMEM (the
 * working memory could not be had); the canvas is then unspecified. */
TsrStatus tsr_image_hd_canvas (const TsrImage *image, const TsrHdPlan *plan, int n_threads,
                               unsigned char *canvas, TsrError *err);

/* ToTensor + Normalize of any RGB8 image into float32 [3, height, width]. */
TsrStatus tsr_image_normalize (const TsrImage *canvas, int n_threads, float *chw,
                               TsrError *err);

/* The global view of a canvas (any size), float32 [3, 336, 336]. */
TsrStatus tsr_image_global_view (const TsrImage *canvas, float *view, TsrError *err);

/* Tile `index` of a canvas whose sides are multiples of 336, float32
 * [3, 336, 336]; TSR_EINVAL for an index outside 0..tiles−1. */
TsrStatus tsr_image_tile (const TsrImage *canvas, int index, float *view, TsrError *err);

/* Writes a float32 array as a NumPy .npy file (format 1.0, '<f4', C order,
 * on any host). On failure (TSR_EIO) the partial file is removed. */
TsrStatus tsr_npy_write_f32 (const char *path, const float *data, int ndim, const size_t *shape,
                             TsrError *err);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_ENGINE_H */
