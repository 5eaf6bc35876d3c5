
/*
 * Copyright (C) ngx_siteflow_module authors
 */


#ifndef _SF_JSON_H_INCLUDED_
#define _SF_JSON_H_INCLUDED_


#include <stddef.h>


/*
 * Helpers shared by the pure JSON readers (shipment requests, postbacks,
 * the mapping file, spool payloads).
 *
 * sf_json_too_deep() counts the nesting of '[' and '{' outside strings in
 * raw JSON text and returns 1 as soon as it exceeds max_depth (the
 * top-level object is level 1), else 0.  On valid JSON this is exactly the
 * depth of the document, so a caller runs it before parsing and jansson
 * never builds a deep tree.  line and column (may be NULL) receive the
 * position of the bracket that went too deep, counted like jansson's: from
 * 1, in characters.
 */

int sf_json_too_deep(const unsigned char *p, size_t len, unsigned max_depth,
    size_t *line, size_t *column);

/*
 * Copies src (valid UTF-8, len bytes) to dst of size bytes, NUL-terminated;
 * if it does not fit, cuts it at a character boundary and ends it with
 * "..." when there is room for that.  Nothing is written when size is 0
 * or dst is NULL.
 */

void sf_json_copy_cut(char *dst, size_t size, const char *src, size_t len);

/*
 * Checks the UTF-8 sequence at p[0 .. n - 1] (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF).  Returns its length if valid; otherwise
 * returns 0 and, when skip is not NULL, sets *skip to the length of the
 * maximal invalid subpart (at least 1), which becomes one U+FFFD.
 */

size_t sf_json_utf8(const unsigned char *p, size_t n, size_t *skip);

/*
 * The one UTF-8 sanitiser: copies src[0 .. len - 1], bytes that may not be
 * UTF-8, to dst[0 .. size - 1] as valid UTF-8.  Each maximal invalid
 * subpart becomes one U+FFFD, or '?' with SF_JSON_CLEAN_QMARK; with
 * SF_JSON_CLEAN_CONTROL the control characters (below 0x20, and 0x7f)
 * become '?' too; with SF_JSON_CLEAN_CUT src is text that something cut
 * at a byte count (ngx_vslprintf()'s limit, say), and a last character
 * cut short is left out rather than made U+FFFD.  A character is never
 * cut: the copy stops before the first one that does not fit.  No NUL is
 * added.  Returns the bytes written.
 */

#define SF_JSON_CLEAN_QMARK    0x01
#define SF_JSON_CLEAN_CONTROL  0x02
#define SF_JSON_CLEAN_CUT      0x04

size_t sf_json_clean(char *dst, size_t size, const char *src, size_t len,
    unsigned flags);

/* 1 if p[0 .. len - 1] is well-formed UTF-8 (as sf_json_utf8), else 0 */

int sf_json_utf8_valid(const unsigned char *p, size_t len);

/*
 * The length to keep of p[0 .. n - 1] cut to at most max bytes: max moved
 * back over up to three UTF-8 continuation bytes, so that a character is
 * never split (more than three in a row are not UTF-8 anyway).
 */

size_t sf_json_utf8_cut(const char *p, size_t n, size_t max);

/*
 * The length of p[0 .. n - 1] without a last character that is cut short
 * (a lead byte whose continuation bytes are not all there), for text that
 * something else truncated at a byte count, such as vsnprintf().
 */

size_t sf_json_utf8_trim(const char *p, size_t n);

/*
 * 1 if p[0 .. len - 1] is an object or array in the compact form jansson
 * writes (json_dumps(json_loadb(p, 0), JSON_COMPACT) would give the same
 * bytes back, duplicate keys aside), 0 if not or if unsure (very deep,
 * long integers, reals that do not print back the same, \u0000).  A
 * writer copies such text as it is instead of parsing and dumping it.
 */

int sf_json_compact(const unsigned char *p, size_t len);

/*
 * Writes src[0 .. len - 1] (UTF-8, checked by the caller) as a JSON
 * string, quotes included, escaped as jansson writes it without flags;
 * dst has room for sf_json_escaped_max(len) bytes.  Returns the bytes
 * written.
 */

#define sf_json_escaped_max(len)  ((len) * 6 + 2)

size_t sf_json_escape(char *dst, const char *src, size_t len);

/*
 * Writes the escape of c, which is '"', '\\' or below 0x20, as jansson
 * writes it (\" \\ \b \f \n \r \t or \u00XX) into dst (room for 6);
 * returns the bytes written.
 */

size_t sf_json_escape_char(char *dst, unsigned char c);

/*
 * 1 for the bytes a JSON string holds as they are, whatever the context:
 * 0x20 to 0x7f but '"' and '\\' (what the string scanners skip in runs)
 */

extern const unsigned char  sf_json_plain[256];

/*
 * v in decimal as "%lld" writes it, and a '\0', into dst (room for
 * SF_JSON_INT_LEN); returns the length without the '\0'
 */

#define SF_JSON_INT_LEN  21

size_t sf_json_int(char *dst, long long v);

/* the four hex digits at p as *v: 1, or 0 if they are not four hex digits */

int sf_json_hex4(const unsigned char *p, unsigned *v);

/*
 * 3 if JSON text starts with a UTF-8 byte order mark, else 0.  RFC 8259
 * (section 8.1) lets a reader ignore one; some Windows and .NET tools
 * write one (a mapping file saved by Notepad, a webhook body), and jansson
 * refuses it.
 */

size_t sf_json_bom(const void *p, size_t len);

/*
 * The length of the JSON number token at p (before end), or 0 if there is
 * none: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; *real says whether
 * it has a fraction or an exponent, *digits counts its integer digits.
 */

size_t sf_json_number(const unsigned char *p, const unsigned char *end,
    unsigned *real, size_t *digits);

/*
 * sf_json_strict(): 1 if p[0 .. len - 1] is, for sure, a JSON object
 * jansson reads with JSON_REJECT_DUPLICATES; then out (len bytes of room)
 * holds the same text without the whitespace between tokens, *out_len
 * bytes.  0 if it is not, or if unsure (deeper than 32, a key with an
 * escape, an integer of more than 18 digits, a real of more than 40
 * characters, ...): the caller then asks jansson.
 *
 * sf_json_members(): the members of an object in such text, up to max
 * into m; returns how many there are, or -1 if a key has an escape.
 */

typedef struct {
    const unsigned char  *key;       /* without the quotes */
    size_t                key_len;
    const unsigned char  *value;     /* its JSON text */
    size_t                value_len;
} sf_json_member_t;

int sf_json_strict(const unsigned char *p, size_t len, unsigned char *out,
    size_t *out_len);
int sf_json_members(const unsigned char *p, size_t len, sf_json_member_t *m,
    size_t max);


/*
 * Gives jansson an allocator that keeps small blocks for reuse (see
 * sf_json.c); every block stays one of malloc(), so free() of jansson's
 * output (json_dumps()) remains right.  Once per process, before or
 * after trees exist.
 */

void sf_json_alloc_install(void);

/*
 * Gives jansson malloc() and free() back and frees the blocks kept: at
 * process exit, so that nothing is left on lists whose heads go with the
 * module when nginx unloads it (valgrind counted them as lost).
 */

void sf_json_alloc_release(void);


#endif /* _SF_JSON_H_INCLUDED_ */
