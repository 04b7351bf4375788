/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-pickle.c — the part of Python's pickle that a PyTorch state dict uses.
 *
 * torch.save pickles a dict (or OrderedDict) of tensors. Each tensor is a
 * call of torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
 * requires_grad, backward_hooks[, metadata]); each storage is a persistent id
 * ('storage', torch.XStorage, key, location, numel) whose bytes live in the
 * zip entry data/<key>. A state dict taken from a module also carries a
 * `_metadata` attribute, set with BUILD.
 *
 * This is not an unpickler. It is a small stack machine that knows those
 * opcodes and those few globals, builds plain values for them, and refuses
 * everything else with the opcode and its byte offset. Nothing is looked up
 * by name and nothing is called: a "global" is only one of six known tags.
 */
#include "tsr-checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"

/* torch.save nests three deep and memoises one slot per object; these are
 * far above any real state dict and bound the memory a hostile file can
 * make us spend. */
#define STACK_MAX  (1u << 20)
#define MARKS_MAX  64u
#define MEMO_MAX   (1u << 22)
#define GLOBAL_LINE_MAX 256u

typedef enum {
  V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_CELL,
} Kind;

typedef enum {
  G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER,
  G_FLOAT_STORAGE, G_HALF_STORAGE, G_BFLOAT16_STORAGE,
} GlobalId;

static const struct {
  const char *module, *name;
} allowed_globals[] = {
  [G_ORDERED_DICT]      = { "collections",  "OrderedDict" },
  [G_REBUILD_TENSOR_V2] = { "torch._utils", "_rebuild_tensor_v2" },
  [G_REBUILD_PARAMETER] = { "torch._utils", "_rebuild_parameter" },
  [G_FLOAT_STORAGE]     = { "torch",        "FloatStorage" },
  [G_HALF_STORAGE]      = { "torch",        "HalfStorage" },
  [G_BFLOAT16_STORAGE]  = { "torch",        "BFloat16Storage" },
};

/* Containers are singly linked lists of cells; tuples here have at most
 * seven items, dicts are only walked front to back. */
typedef struct {
  uint8_t     kind;
  uint8_t     tag;        /* V_GLOBAL: GlobalId; V_STORAGE: TsrDType */
  const char *str;        /* V_STR, V_STORAGE: key */
  uint64_t    len;
  int64_t     i;          /* V_INT, V_BOOL, V_STORAGE: numel, V_TENSOR: index */
  uint32_t    first, last, count;  /* containers */
  uint32_t    next, key, value;    /* cells */
} Node;

typedef struct {
  uint32_t storage;       /* node */
  int64_t  offset;
  int      n_dims;        /* may exceed TSR_CKPT_MAX_DIMS: refused with the name */
  int64_t  shape[TSR_CKPT_MAX_DIMS];
  int64_t  stride[TSR_CKPT_MAX_DIMS];
} Tensor;

typedef struct {
  const uint8_t *buf;
  size_t         len, pos, op_pos;
  const char    *what;
  TsrError      *err;

  Node          *nodes;
  size_t         n_nodes, cap_nodes, max_nodes;
  uint32_t      *stack;
  size_t         sp, cap_stack;
  size_t         marks[MARKS_MAX];
  size_t         n_marks;
  uint32_t      *memo;
  size_t         cap_memo, memo_len;
  Tensor        *tensors;
  size_t         n_tensors, cap_tensors;
} Vm;

#define NO_NODE UINT32_MAX

static const char *
opcode_name (uint8_t op)
{
  switch (op)
    {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    default: return NULL;
    }
}

/* Every error names the opcode being run and where it starts. */
static TsrStatus
fail (Vm *vm, TsrStatus status, const char *msg)
{
  uint8_t op = vm->op_pos < vm->len ? vm->buf[vm->op_pos] : 0;
  const char *name = opcode_name (op);
  if (name != NULL)
    return tsr_error_set (vm->err, status, "%s: %s (opcode %s at byte %zu)", vm->what, msg, name, vm->op_pos);
  return tsr_error_set (vm->err, status, "%s: %s (opcode 0x%02x at byte %zu)", vm->what, msg, op, vm->op_pos);
}

static TsrStatus
fail_plain (Vm *vm, const char *msg)
{
  return fail (vm, TSR_EFORMAT, msg);
}

/* ==== Reading the byte stream =========================================== */

static int
need (Vm *vm, size_t n)
{
  return n <= vm->len - vm->pos;
}

static uint64_t
read_le (Vm *vm, size_t n)
{
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t) vm->buf[vm->pos + i] << (8 * i);
  vm->pos += n;
  return v;
}

/* ==== Nodes, stack, marks, memo ========================================= */

static uint32_t
new_node (Vm *vm, Kind kind)
{
  Node *n;
  if (vm->n_nodes >= vm->max_nodes)
    {
      fail (vm, TSR_ETOOLARGE, "the pickle builds more objects than its size allows");
      return NO_NODE;
    }
  if (vm->n_nodes == vm->cap_nodes)
    {
      size_t cap = vm->cap_nodes ? vm->cap_nodes * 2 : 1024;
      Node *nn = realloc (vm->nodes, cap * sizeof *nn);
      if (nn == NULL)
        {
          fail (vm, TSR_ENOMEM, "out of memory");
          return NO_NODE;
        }
      vm->nodes = nn;
      vm->cap_nodes = cap;
    }
  n = &vm->nodes[vm->n_nodes];
  memset (n, 0, sizeof *n);
  n->kind = (uint8_t) kind;
  n->first = n->last = n->next = n->key = n->value = NO_NODE;
  return (uint32_t) vm->n_nodes++;
}

static TsrStatus
push (Vm *vm, uint32_t node)
{
  if (node == NO_NODE)
    return vm->err->status;
  if (vm->sp >= STACK_MAX)
    return fail (vm, TSR_ETOOLARGE, "the pickle stack grows past its limit");
  if (vm->sp == vm->cap_stack)
    {
      size_t cap = vm->cap_stack ? vm->cap_stack * 2 : 256;
      uint32_t *ns = realloc (vm->stack, cap * sizeof *ns);
      if (ns == NULL)
        return fail (vm, TSR_ENOMEM, "out of memory");
      vm->stack = ns;
      vm->cap_stack = cap;
    }
  vm->stack[vm->sp++] = node;
  return TSR_OK;
}

/* Items below the innermost mark belong to an enclosing construct. */
static size_t
fence (const Vm *vm)
{
  return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

static TsrStatus
pop (Vm *vm, uint32_t *out)
{
  *out = NO_NODE;
  if (vm->sp <= fence (vm))
    return fail_plain (vm, "stack underflow");
  *out = vm->stack[--vm->sp];
  return TSR_OK;
}

static TsrStatus
top (Vm *vm, uint32_t *out)
{
  *out = NO_NODE;
  if (vm->sp <= fence (vm))
    return fail_plain (vm, "stack underflow");
  *out = vm->stack[vm->sp - 1];
  return TSR_OK;
}

static TsrStatus
pop_mark (Vm *vm, size_t *start)
{
  *start = 0;
  if (vm->n_marks == 0)
    return fail_plain (vm, "no MARK to close");
  *start = vm->marks[--vm->n_marks];
  return TSR_OK;
}

static TsrStatus
append_cell (Vm *vm, uint32_t container, uint32_t key, uint32_t value)
{
  uint32_t c = new_node (vm, V_CELL);
  Node *box;
  if (c == NO_NODE)
    return vm->err->status;
  vm->nodes[c].key = key;
  vm->nodes[c].value = value;
  box = &vm->nodes[container];
  if (box->last == NO_NODE)
    box->first = c;
  else
    vm->nodes[box->last].next = c;
  box->last = c;
  box->count++;
  return TSR_OK;
}

/* Replaces stack[start..sp) by a new tuple of those items. */
static TsrStatus
make_tuple (Vm *vm, size_t start)
{
  uint32_t t = new_node (vm, V_TUPLE);
  TsrStatus st;
  if (t == NO_NODE)
    return vm->err->status;
  for (size_t i = start; i < vm->sp; i++)
    if ((st = append_cell (vm, t, NO_NODE, vm->stack[i])) != TSR_OK)
      return st;
  vm->sp = start;
  return push (vm, t);
}

static TsrStatus
memo_put (Vm *vm, uint64_t index)
{
  uint32_t v;
  TsrStatus st;
  if ((st = top (vm, &v)) != TSR_OK)
    return st;
  if (index >= MEMO_MAX)
    {
      char m[64];
      snprintf (m, sizeof m, "memo index %llu is beyond the supported range", (unsigned long long) index);
      return fail (vm, TSR_ETOOLARGE, m);
    }
  if (index >= vm->cap_memo)
    {
      size_t cap = vm->cap_memo ? vm->cap_memo : 256;
      uint32_t *nm;
      while (cap <= index)
        cap *= 2;
      nm = realloc (vm->memo, cap * sizeof *nm);
      if (nm == NULL)
        return fail (vm, TSR_ENOMEM, "out of memory");
      for (size_t i = vm->cap_memo; i < cap; i++)
        nm[i] = NO_NODE;
      vm->memo = nm;
      vm->cap_memo = cap;
    }
  if (vm->memo[index] == NO_NODE)
    vm->memo_len++;
  vm->memo[index] = v;
  return TSR_OK;
}

static TsrStatus
memo_get (Vm *vm, uint64_t index)
{
  if (index >= vm->cap_memo || vm->memo[index] == NO_NODE)
    {
      char m[64];
      snprintf (m, sizeof m, "memo index %llu was never stored", (unsigned long long) index);
      return fail (vm, TSR_EFORMAT, m);
    }
  return push (vm, vm->memo[index]);
}

/* ==== The few things a state dict calls ================================ */

static const Node *
item_at (const Vm *vm, const Node *box, uint32_t i)
{
  uint32_t c = box->first;
  while (i-- > 0 && c != NO_NODE)
    c = vm->nodes[c].next;
  return c == NO_NODE ? NULL : &vm->nodes[vm->nodes[c].value];
}

/* Reads a tuple of ints (a size or a stride) into out[0..n); what is the
 * message when t is not a tuple. */
static TsrStatus
int_tuple (Vm *vm, const Node *t, int64_t *out, int *n_out, const char *what)
{
  int n = 0;
  if (t == NULL || t->kind != V_TUPLE)
    return fail_plain (vm, what);
  for (uint32_t c = t->first; c != NO_NODE; c = vm->nodes[c].next)
    {
      const Node *v = &vm->nodes[vm->nodes[c].value];
      if (v->kind != V_INT)
        return fail_plain (vm, "a tensor's size or stride holds something other than integers");
      if (n < TSR_CKPT_MAX_DIMS)
        out[n] = v->i;
      if (++n > 64)
        return fail_plain (vm, "a tensor has more than 64 dimensions");
    }
  *n_out = n;
  return TSR_OK;
}

static TsrStatus
rebuild_tensor (Vm *vm, const Node *args)
{
  const Node *storage, *offset, *grad, *hooks;
  Tensor t;
  int n_stride = 0;
  TsrStatus st;
  uint32_t node;

  if (args->count != 6 && args->count != 7)
    return fail_plain (vm, "_rebuild_tensor_v2 takes 6 or 7 arguments");
  storage = item_at (vm, args, 0);
  offset = item_at (vm, args, 1);
  grad = item_at (vm, args, 4);
  hooks = item_at (vm, args, 5);
  if (storage->kind != V_STORAGE)
    return fail_plain (vm, "_rebuild_tensor_v2 is not given a storage");
  if (offset->kind != V_INT || offset->i < 0)
    return fail_plain (vm, "_rebuild_tensor_v2 is given a bad storage offset");
  if (grad->kind != V_BOOL || hooks->kind != V_DICT)
    return fail_plain (vm, "_rebuild_tensor_v2 is given unexpected arguments");
  if (args->count == 7)
    {
      const Node *meta = item_at (vm, args, 6);
      if (meta->kind != V_DICT && meta->kind != V_NONE)
        return fail_plain (vm, "_rebuild_tensor_v2 is given unexpected metadata");
    }
  memset (&t, 0, sizeof t);
  t.storage = (uint32_t) (storage - vm->nodes);
  t.offset = offset->i;
  if ((st = int_tuple (vm, item_at (vm, args, 2), t.shape, &t.n_dims, "a tensor's size is not a tuple")) != TSR_OK)
    return st;
  if ((st = int_tuple (vm, item_at (vm, args, 3), t.stride, &n_stride, "a tensor's stride is not a tuple")) != TSR_OK)
    return st;
  if (n_stride != t.n_dims)
    return fail_plain (vm, "the tensor's size and stride differ in length");

  if (vm->n_tensors == vm->cap_tensors)
    {
      size_t cap = vm->cap_tensors ? vm->cap_tensors * 2 : 256;
      Tensor *nt = realloc (vm->tensors, cap * sizeof *nt);
      if (nt == NULL)
        return fail (vm, TSR_ENOMEM, "out of memory");
      vm->tensors = nt;
      vm->cap_tensors = cap;
    }
  vm->tensors[vm->n_tensors] = t;
  node = new_node (vm, V_TENSOR);
  if (node == NO_NODE)
    return vm->err->status;
  vm->nodes[node].i = (int64_t) vm->n_tensors++;
  return push (vm, node);
}

static TsrStatus
op_reduce (Vm *vm)
{
  uint32_t a, f;
  const Node *args, *fn;
  TsrStatus st;

  if ((st = pop (vm, &a)) != TSR_OK || (st = pop (vm, &f)) != TSR_OK)
    return st;
  args = &vm->nodes[a];
  fn = &vm->nodes[f];
  if (fn->kind != V_GLOBAL)
    return fail_plain (vm, "REDUCE calls something that is not an allowed global");
  if (args->kind != V_TUPLE)
    return fail_plain (vm, "REDUCE arguments are not a tuple");
  switch ((GlobalId) fn->tag)
    {
    case G_ORDERED_DICT:
      if (args->count != 0)
        return fail_plain (vm, "OrderedDict is called with arguments");
      return push (vm, new_node (vm, V_DICT));
    case G_REBUILD_TENSOR_V2:
      return rebuild_tensor (vm, args);
    case G_REBUILD_PARAMETER:
      {
        /* (data, requires_grad, backward_hooks): a Parameter is its tensor. */
        const Node *data = args->count == 3 ? item_at (vm, args, 0) : NULL;
        if (data == NULL || data->kind != V_TENSOR)
          return fail_plain (vm, "_rebuild_parameter is not given a tensor");
        return push (vm, (uint32_t) (data - vm->nodes));
      }
    case G_FLOAT_STORAGE:
    case G_HALF_STORAGE:
    case G_BFLOAT16_STORAGE:
      break;
    }
  return fail_plain (vm, "a storage type may only appear inside a persistent id");
}

static TsrStatus
op_binpersid (Vm *vm)
{
  uint32_t p, node;
  const Node *pid, *tag, *cls, *key, *loc, *numel;
  TsrStatus st;

  if ((st = pop (vm, &p)) != TSR_OK)
    return st;
  pid = &vm->nodes[p];
  if (pid->kind != V_TUPLE || pid->count != 5)
    return fail_plain (vm, "a persistent id is not a 5-tuple ('storage', type, key, location, numel)");
  tag = item_at (vm, pid, 0);
  cls = item_at (vm, pid, 1);
  key = item_at (vm, pid, 2);
  loc = item_at (vm, pid, 3);
  numel = item_at (vm, pid, 4);
  if (tag->kind != V_STR || tag->len != 7 || memcmp (tag->str, "storage", 7) != 0)
    return fail_plain (vm, "a persistent id is not a storage");
  if (cls->kind != V_GLOBAL || cls->tag < G_FLOAT_STORAGE)
    return fail_plain (vm, "a storage's type is not FloatStorage, HalfStorage or BFloat16Storage");
  if (key->kind != V_STR || loc->kind != V_STR || numel->kind != V_INT || numel->i < 0)
    return fail_plain (vm, "a storage's key, location or size is malformed");
  {
    /* new_node may move the nodes: copy out of them first. */
    Node s = { 0 };
    s.tag = cls->tag == G_FLOAT_STORAGE ? TSR_DTYPE_F32 : cls->tag == G_HALF_STORAGE ? TSR_DTYPE_F16 : TSR_DTYPE_BF16;
    s.str = key->str;
    s.len = key->len;
    s.i = numel->i;
    node = new_node (vm, V_STORAGE);
    if (node == NO_NODE)
      return vm->err->status;
    vm->nodes[node].tag = s.tag;
    vm->nodes[node].str = s.str;
    vm->nodes[node].len = s.len;
    vm->nodes[node].i = s.i;
  }
  return push (vm, node);
}

static TsrStatus
push_global (Vm *vm, const char *module, size_t mlen, const char *name, size_t nlen)
{
  uint32_t node;
  char shown[GLOBAL_LINE_MAX * 2 + 8];
  char qm[GLOBAL_LINE_MAX], qn[GLOBAL_LINE_MAX];

  for (size_t g = 0; g < sizeof allowed_globals / sizeof allowed_globals[0]; g++)
    if (strlen (allowed_globals[g].module) == mlen && memcmp (allowed_globals[g].module, module, mlen) == 0
        && strlen (allowed_globals[g].name) == nlen && memcmp (allowed_globals[g].name, name, nlen) == 0)
      {
        node = new_node (vm, V_GLOBAL);
        if (node == NO_NODE)
          return vm->err->status;
        vm->nodes[node].tag = (uint8_t) g;
        return push (vm, node);
      }
  snprintf (shown, sizeof shown, "%s.%s", tsr_quote_name (module, mlen, qm, sizeof qm),
            tsr_quote_name (name, nlen, qn, sizeof qn));
  {
    char m[GLOBAL_LINE_MAX * 2 + 96];
    snprintf (m, sizeof m, "refusing the global '%s': only the types a PyTorch state dict needs are allowed",
              shown);
    return fail (vm, TSR_EFORMAT, m);
  }
}

static TsrStatus
op_global (Vm *vm)
{
  const char *line[2];
  size_t len[2];
  for (int k = 0; k < 2; k++)
    {
      const uint8_t *start = vm->buf + vm->pos;
      size_t avail = vm->len - vm->pos;
      const uint8_t *nl = memchr (start, '\n', avail < GLOBAL_LINE_MAX ? avail : GLOBAL_LINE_MAX);
      if (nl == NULL)
        return fail_plain (vm, "a GLOBAL name is unterminated or too long");
      line[k] = (const char *) start;
      len[k] = (size_t) (nl - start);
      vm->pos += len[k] + 1;
    }
  return push_global (vm, line[0], len[0], line[1], len[1]);
}

static TsrStatus
op_stack_global (Vm *vm)
{
  uint32_t m, n;
  TsrStatus st;
  if ((st = pop (vm, &n)) != TSR_OK || (st = pop (vm, &m)) != TSR_OK)
    return st;
  if (vm->nodes[m].kind != V_STR || vm->nodes[n].kind != V_STR
      || vm->nodes[m].len >= GLOBAL_LINE_MAX || vm->nodes[n].len >= GLOBAL_LINE_MAX)
    return fail_plain (vm, "STACK_GLOBAL is not given two short strings");
  return push_global (vm, vm->nodes[m].str, vm->nodes[m].len, vm->nodes[n].str, vm->nodes[n].len);
}

static TsrStatus
push_int (Vm *vm, int64_t v)
{
  uint32_t node = new_node (vm, V_INT);
  if (node == NO_NODE)
    return vm->err->status;
  vm->nodes[node].i = v;
  return push (vm, node);
}

static TsrStatus
push_str (Vm *vm, size_t len_bytes)
{
  uint64_t n;
  uint32_t node;
  if (!need (vm, len_bytes))
    return fail_plain (vm, "the pickle ends inside a string length");
  n = read_le (vm, len_bytes);
  if (!need (vm, n))
    return fail_plain (vm, "a string runs past the end of the pickle");
  node = new_node (vm, V_STR);
  if (node == NO_NODE)
    return vm->err->status;
  vm->nodes[node].str = (const char *) vm->buf + vm->pos;
  vm->nodes[node].len = n;
  vm->pos += (size_t) n;
  return push (vm, node);
}

static TsrStatus
op_setitems (Vm *vm, int many)
{
  size_t start = vm->sp - 2;
  uint32_t d;
  TsrStatus st;
  if (many)
    {
      if ((st = pop_mark (vm, &start)) != TSR_OK)
        return st;
      if ((vm->sp - start) % 2 != 0)
        return fail_plain (vm, "SETITEMS has a key without a value");
    }
  else if (vm->sp < fence (vm) + 2)
    return fail_plain (vm, "stack underflow");
  if (start <= fence (vm))
    return fail_plain (vm, "stack underflow");
  d = vm->stack[start - 1];
  if (vm->nodes[d].kind != V_DICT)
    return fail_plain (vm, "items are set on something that is not a dict");
  for (size_t i = start; i + 1 < vm->sp; i += 2)
    if ((st = append_cell (vm, d, vm->stack[i], vm->stack[i + 1])) != TSR_OK)
      return st;
  vm->sp = start;
  return TSR_OK;
}

static TsrStatus
op_appends (Vm *vm, int many)
{
  size_t start = vm->sp - 1;
  uint32_t l;
  TsrStatus st;
  if (many)
    {
      if ((st = pop_mark (vm, &start)) != TSR_OK)
        return st;
    }
  else if (vm->sp < fence (vm) + 1)
    return fail_plain (vm, "stack underflow");
  if (start <= fence (vm))
    return fail_plain (vm, "stack underflow");
  l = vm->stack[start - 1];
  if (vm->nodes[l].kind != V_LIST)
    return fail_plain (vm, "items are appended to something that is not a list");
  for (size_t i = start; i < vm->sp; i++)
    if ((st = append_cell (vm, l, NO_NODE, vm->stack[i])) != TSR_OK)
      return st;
  vm->sp = start;
  return TSR_OK;
}

/* ==== Handing the result over ========================================== */

static TsrStatus
emit (Vm *vm, uint32_t result, TsrPickleSink sink, void *user_data)
{
  const Node *dict = &vm->nodes[result];
  char q[160];

  if (dict->kind != V_DICT)
    return tsr_error_set (vm->err, TSR_EFORMAT, "%s: the pickle does not hold a dict of tensors", vm->what);
  for (uint32_t c = dict->first; c != NO_NODE; c = vm->nodes[c].next)
    {
      const Node *k = &vm->nodes[vm->nodes[c].key], *v = &vm->nodes[vm->nodes[c].value];
      const Tensor *t;
      const Node *s;
      TsrPickleTensor out;
      const char *qn;
      int64_t numel, expect = 1;

      if (k->kind != V_STR)
        return tsr_error_set (vm->err, TSR_EFORMAT, "%s: a key of the state dict is not a string", vm->what);
      qn = tsr_quote_name (k->str, (size_t) k->len, q, sizeof q);
      if (v->kind != V_TENSOR)
        return tsr_error_set (vm->err, TSR_EFORMAT, "%s: the value of '%s' is not a tensor", vm->what, qn);
      t = &vm->tensors[v->i];
      s = &vm->nodes[t->storage];
      if (t->n_dims > TSR_CKPT_MAX_DIMS)
        return tsr_error_set (vm->err, TSR_EFORMAT, "%s: tensor '%s' has %d dimensions; at most %d are supported",
                              vm->what, qn, t->n_dims, TSR_CKPT_MAX_DIMS);
      numel = tsr_shape_numel (t->shape, t->n_dims);
      if (numel < 0 || numel > INT64_MAX / 8)
        return tsr_error_set (vm->err, TSR_EFORMAT, "%s: tensor '%s' has an impossible shape", vm->what, qn);
      /* C order: each stride is the product of the sizes after it; a
       * dimension of size 1 may carry any stride, as PyTorch allows. */
      if (numel > 0)
        for (int d = t->n_dims - 1; d >= 0; d--)
          {
            if (t->shape[d] != 1 && t->stride[d] != expect)
              return tsr_error_set (vm->err, TSR_EFORMAT,
                                    "%s: non-contiguous tensor '%s' (its strides are not C order); "
                                    "save it with .contiguous()", vm->what, qn);
            expect *= t->shape[d];
          }
      if (t->offset > s->i || numel > s->i - t->offset)
        return tsr_error_set (vm->err, TSR_EFORMAT,
                              "%s: tensor '%s' needs elements %lld..%lld of a storage that has %lld",
                              vm->what, qn, (long long) t->offset, (long long) (t->offset + numel),
                              (long long) s->i);
      memset (&out, 0, sizeof out);
      out.name = k->str;
      out.name_len = (size_t) k->len;
      out.dtype = (TsrDType) s->tag;
      out.storage_key = s->str;
      out.storage_key_len = (size_t) s->len;
      out.storage_numel = s->i;
      out.storage_offset = t->offset;
      out.n_dims = t->n_dims;
      for (int d = 0; d < t->n_dims; d++)
        out.shape[d] = t->shape[d];
      {
        TsrStatus st = sink (user_data, &out, vm->err);
        if (st != TSR_OK)
          return st;
      }
    }
  return TSR_OK;
}

/* ==== The loop ========================================================== */

static TsrStatus
run (Vm *vm, TsrPickleSink sink, void *user_data)
{
  TsrStatus st = TSR_OK;

  while (vm->pos < vm->len)
    {
      uint8_t op;
      vm->op_pos = vm->pos;
      op = vm->buf[vm->pos++];
      switch (op)
        {
        case 0x80: /* PROTO */
          if (!need (vm, 1))
            return fail_plain (vm, "the pickle ends inside PROTO");
          if (vm->buf[vm->pos] < 2 || vm->buf[vm->pos] > 5)
            {
              char m[64];
              snprintf (m, sizeof m, "pickle protocol %u is not supported (2 to 5 are)", vm->buf[vm->pos]);
              return fail (vm, TSR_EFORMAT, m);
            }
          vm->pos++;
          break;
        case 0x95: /* FRAME: only a read-ahead hint */
          if (!need (vm, 8))
            return fail_plain (vm, "the pickle ends inside FRAME");
          vm->pos += 8;
          break;
        case '}':
          st = push (vm, new_node (vm, V_DICT));
          break;
        case ']':
          st = push (vm, new_node (vm, V_LIST));
          break;
        case ')':
          st = make_tuple (vm, vm->sp);
          break;
        case '(':
          if (vm->n_marks >= MARKS_MAX)
            return fail (vm, TSR_ETOOLARGE, "MARKs nest deeper than supported");
          vm->marks[vm->n_marks++] = vm->sp;
          break;
        case 't':
          {
            size_t start;
            if ((st = pop_mark (vm, &start)) == TSR_OK)
              st = make_tuple (vm, start);
          }
          break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
          {
            size_t k = (size_t) (op - 0x84);
            if (vm->sp < fence (vm) + k)
              return fail_plain (vm, "stack underflow");
            st = make_tuple (vm, vm->sp - k);
          }
          break;
        case 'q':
          if (!need (vm, 1))
            return fail_plain (vm, "the pickle ends inside BINPUT");
          st = memo_put (vm, read_le (vm, 1));
          break;
        case 'r':
          if (!need (vm, 4))
            return fail_plain (vm, "the pickle ends inside LONG_BINPUT");
          st = memo_put (vm, read_le (vm, 4));
          break;
        case 0x94: /* MEMOIZE: Python stores at len(memo) */
          st = memo_put (vm, vm->memo_len);
          break;
        case 'h':
          if (!need (vm, 1))
            return fail_plain (vm, "the pickle ends inside BINGET");
          st = memo_get (vm, read_le (vm, 1));
          break;
        case 'j':
          if (!need (vm, 4))
            return fail_plain (vm, "the pickle ends inside LONG_BINGET");
          st = memo_get (vm, read_le (vm, 4));
          break;
        case 'J':
          if (!need (vm, 4))
            return fail_plain (vm, "the pickle ends inside BININT");
          st = push_int (vm, (int32_t) (uint32_t) read_le (vm, 4));
          break;
        case 'K':
          if (!need (vm, 1))
            return fail_plain (vm, "the pickle ends inside BININT1");
          st = push_int (vm, (int64_t) read_le (vm, 1));
          break;
        case 'M':
          if (!need (vm, 2))
            return fail_plain (vm, "the pickle ends inside BININT2");
          st = push_int (vm, (int64_t) read_le (vm, 2));
          break;
        case 0x8a: /* LONG1: n little-endian two's-complement bytes */
          {
            size_t n;
            uint64_t v;
            if (!need (vm, 1))
              return fail_plain (vm, "the pickle ends inside LONG1");
            n = vm->buf[vm->pos++];
            if (n > 8)
              return fail_plain (vm, "an integer is wider than 64 bits");
            if (!need (vm, n))
              return fail_plain (vm, "the pickle ends inside LONG1");
            v = read_le (vm, n);
            if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1)
              v |= ~(uint64_t) 0 << (8 * n);
            st = push_int (vm, (int64_t) v);
          }
          break;
        case 'X':
          st = push_str (vm, 4);
          break;
        case 0x8c:
          st = push_str (vm, 1);
          break;
        case 0x8d:
          st = push_str (vm, 8);
          break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
          {
            uint32_t node = new_node (vm, V_BOOL);
            if (node == NO_NODE)
              return vm->err->status;
            vm->nodes[node].i = op == 0x88;
            st = push (vm, node);
          }
          break;
        case 'N':
          st = push (vm, new_node (vm, V_NONE));
          break;
        case 'c':
          st = op_global (vm);
          break;
        case 0x93:
          st = op_stack_global (vm);
          break;
        case 'R':
          st = op_reduce (vm);
          break;
        case 'Q':
          st = op_binpersid (vm);
          break;
        case 'b': /* BUILD: only a dict's attributes (a state dict's _metadata) */
          {
            uint32_t state, obj;
            if ((st = pop (vm, &state)) != TSR_OK || (st = top (vm, &obj)) != TSR_OK)
              return st;
            if (vm->nodes[obj].kind != V_DICT)
              return fail_plain (vm, "BUILD is applied to something that is not a dict");
          }
          break;
        case 's':
          st = op_setitems (vm, 0);
          break;
        case 'u':
          st = op_setitems (vm, 1);
          break;
        case 'a':
          st = op_appends (vm, 0);
          break;
        case 'e':
          st = op_appends (vm, 1);
          break;
        case '.':
          {
            uint32_t result;
            if ((st = pop (vm, &result)) != TSR_OK)
              return st;
            return emit (vm, result, sink, user_data);
          }
        default:
          return fail_plain (vm, "unsupported opcode: a PyTorch state dict does not use it");
        }
      if (st != TSR_OK)
        return st;
    }
  vm->op_pos = vm->len;
  return tsr_error_set (vm->err, TSR_EFORMAT, "%s: the pickle ends without STOP (truncated?)", vm->what);
}

TsrStatus
tsr_pickle_parse (const uint8_t *buf, size_t len, const char *what,
                  TsrPickleSink sink, void *user_data, TsrError *err)
{
  TsrError local;
  Vm vm;
  TsrStatus st;

  memset (&vm, 0, sizeof vm);
  vm.buf = buf;
  vm.len = len;
  vm.what = what;
  vm.err = err ? err : &local;
  vm.err->status = TSR_OK;
  /* Each opcode byte makes at most two nodes (a value and its cell). */
  vm.max_nodes = 2 * len + 16;
  if (vm.max_nodes > NO_NODE - 1)
    vm.max_nodes = NO_NODE - 1;
  st = run (&vm, sink, user_data);
  free (vm.nodes);
  free (vm.stack);
  free (vm.memo);
  free (vm.tensors);
  return st;
}
