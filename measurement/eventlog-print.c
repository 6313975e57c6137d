/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>

#include "cursor.h"
#include "eventlog-print.h"
#include "hex.h"

/* How much undecoded event data the text listing shows (the JSON always has all of it). */
#define TEXT_HEX_MAX 256U

/* UEFI_PARTITION_TABLE_HEADER as measured (EDK2's EFI_PARTITION_TABLE_HEADER, 92 bytes). */
#define GPT_HEADER_SIZE 92U
#define GPT_ENTRY_MIN_SIZE 128U
#define GPT_ENTRY_MAX_SIZE 4096U
#define GPT_NAME_SIZE 72U

#define GUID_STRING_MAX 37

static const uint8_t efi_global_variable_guid[16] = {
        0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
};

static void json_putp(json_object **o) {
        if (*o)
                (void) json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

/* --- JSON helpers: each takes ownership of the new value and fails only with -ENOMEM ---------- */

static int add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                (void) json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int append(json_object *a, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                (void) json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_str(json_object *o, const char *key, const char *s) {
        return add(o, key, json_object_new_string(s));
}

static int add_int(json_object *o, const char *key, int64_t v) {
        return add(o, key, json_object_new_int64(v));
}

static int add_u64(json_object *o, const char *key, uint64_t v) {
        return add(o, key, json_object_new_uint64(v));
}

static int add_bool(json_object *o, const char *key, bool v) {
        return add(o, key, json_object_new_boolean(v));
}

static int add_hex_u64(json_object *o, const char *key, uint64_t v) {
        char buf[2 + 16 + 1];

        (void) snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
        return add_str(o, key, buf);
}

static int add_hex_bytes(json_object *o, const char *key, const uint8_t *p, size_t n) {
        _cleanup_free_ char *s = hex_encode_alloc(p, n);

        if (!s)
                return -ENOMEM;
        return add_str(o, key, s);
}

static char *guid_to_string(const uint8_t g[static 16], char out[static GUID_STRING_MAX]) {
        (void) snprintf(out, GUID_STRING_MAX, "%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        load_le32(g), load_le16(g + 4), load_le16(g + 6), g[8], g[9], g[10], g[11], g[12],
                        g[13], g[14], g[15]);
        return out;
}

static int add_guid(json_object *o, const char *key, const uint8_t g[static 16]) {
        char buf[GUID_STRING_MAX];

        return add_str(o, key, guid_to_string(g, buf));
}

/* Records why the data did not decode; the first reason wins. Returns 0 or -ENOMEM. */
static int decode_error(json_object *o, size_t offset, const char *fmt, ...) _printf_(3, 4);
static int decode_error(json_object *o, size_t offset, const char *fmt, ...) {
        char what[192], buf[256];
        va_list ap;

        if (json_object_object_get_ex(o, "decode_error", NULL))
                return 0;
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        (void) snprintf(buf, sizeof(buf), "%s at offset 0x%zx", what, offset);
        return add_str(o, "decode_error", buf);
}

/* --- strings -------------------------------------------------------------------------------- */

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const uint8_t *s, size_t n, size_t *ret_bad) {
        size_t i = 0;

        while (i < n) {
                uint8_t b = s[i];
                size_t len;
                uint32_t cp, min;

                if (b < 0x80) {
                        i++;
                        continue;
                }
                if ((b & 0xe0) == 0xc0)
                        len = 2, cp = b & 0x1f, min = 0x80;
                else if ((b & 0xf0) == 0xe0)
                        len = 3, cp = b & 0x0f, min = 0x800;
                else if ((b & 0xf8) == 0xf0)
                        len = 4, cp = b & 0x07, min = 0x10000;
                else
                        goto bad;
                if (len > n - i)
                        goto bad;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                goto bad;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        goto bad;
                i += len;
        }
        return true;
bad:
        *ret_bad = i;
        return false;
}

/* Adds `key`: the bytes of c up to the first NUL, which must be UTF-8 (ASCII in practice). */
static int add_text(json_object *o, const char *key, const struct cursor *c) {
        _cleanup_free_ char *s = NULL;
        const uint8_t *p = cursor_peek(c), *nul;
        size_t n = cursor_remaining(c), bad = 0;

        nul = n > 0 ? memchr(p, 0, n) : NULL;
        if (nul)
                n = (size_t) (nul - p);
        if (!utf8_valid(p, n, &bad))
                return decode_error(o, cursor_offset(c) + bad, "invalid UTF-8 byte 0x%02x in string", p[bad]);
        s = strndup((const char *) p, n);
        if (!s)
                return -ENOMEM;
        return add_str(o, key, s);
}

/* Whether bytes look like printable text (with an optional NUL terminator and padding). */
static bool looks_ascii(const uint8_t *p, size_t n) {
        size_t i = 0;

        for (; i < n && p[i] != 0; i++)
                if (p[i] < 0x20 || p[i] > 0x7e)
                        return false;
        if (i == 0)
                return false;
        for (; i < n; i++)
                if (p[i] != 0)
                        return false;
        return true;
}

static bool looks_utf16(const uint8_t *p, size_t n) {
        return n >= 2 && p[0] != 0 && p[1] == 0;
}

struct utf16 {
        char *text;        /* UTF-8, NUL-terminated; NULL on error */
        size_t consumed;   /* input bytes used, including a NUL terminator */
        const char *error; /* static description, NULL on success */
        size_t error_pos;  /* relative position of the problem */
        uint16_t unit;     /* the offending code unit, for surrogate errors */
};

static void utf16_done(struct utf16 *u) {
        free(u->text);
        *u = (struct utf16) {};
}

/* Decodes UTF-16LE. With `terminated`, a NUL code unit must occur within n bytes and ends the
 * string; otherwise all n bytes are the string (n must be even) and a NUL, if any, ends it early.
 * Returns -ENOMEM, or 0 with either ret->text or ret->error set. */
static int utf16_decode(const uint8_t *p, size_t n, bool terminated, struct utf16 *ret) {
        _cleanup_free_ char *out = NULL;
        size_t i = 0, o = 0, alloc;
        bool found_nul = false;

        *ret = (struct utf16) {};
        if (!terminated && n % 2 != 0) {
                *ret = (struct utf16) { .error = "odd-length UTF-16", .error_pos = n - 1 };
                return 0;
        }

        /* A code unit becomes at most 3 bytes of UTF-8, a surrogate pair 4. */
        alloc = n / 2 * 3 + 1;
        out = malloc(alloc);
        if (!out)
                return -ENOMEM;

        while (i + 1 < n) {
                uint32_t cp = load_le16(p + i);
                size_t at = i;

                i += 2;
                if (cp == 0) {
                        found_nul = true;
                        break;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                        uint16_t lo = i + 1 < n ? load_le16(p + i) : 0;

                        if (lo < 0xdc00 || lo > 0xdfff) {
                                *ret = (struct utf16) { .error = "unpaired UTF-16 surrogate", .error_pos = at, .unit = (uint16_t) cp };
                                return 0;
                        }
                        i += 2;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                        *ret = (struct utf16) { .error = "unpaired UTF-16 surrogate", .error_pos = at, .unit = (uint16_t) cp };
                        return 0;
                }

                if (cp < 0x80)
                        out[o++] = (char) cp;
                else if (cp < 0x800) {
                        out[o++] = (char) (0xc0 | (cp >> 6));
                        out[o++] = (char) (0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                        out[o++] = (char) (0xe0 | (cp >> 12));
                        out[o++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                        out[o++] = (char) (0x80 | (cp & 0x3f));
                } else {
                        out[o++] = (char) (0xf0 | (cp >> 18));
                        out[o++] = (char) (0x80 | ((cp >> 12) & 0x3f));
                        out[o++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                        out[o++] = (char) (0x80 | (cp & 0x3f));
                }
        }

        if (terminated && !found_nul) {
                *ret = (struct utf16) { .error = "unterminated UTF-16", .error_pos = n };
                return 0;
        }
        out[o] = 0;
        *ret = (struct utf16) { .text = TAKE_PTR(out), .consumed = found_nul ? i : n };
        return 0;
}

/* Adds `key` decoded from n bytes of UTF-16LE at c (advancing past them), or a decode error. */
static int add_utf16(json_object *o, json_object *errors, const char *key, struct cursor *c, size_t n, bool terminated) {
        struct utf16 u;
        int r;

        n = MIN(n, cursor_remaining(c));
        r = utf16_decode(cursor_peek(c), n, terminated, &u);
        if (r < 0)
                return r;
        if (u.error) {
                if (u.unit)
                        return decode_error(errors, cursor_offset(c) + u.error_pos, "%s 0x%04x in %s", u.error, u.unit, key);
                return decode_error(errors, cursor_offset(c) + u.error_pos, "%s in %s (%zu bytes)", u.error, key, n);
        }
        r = add_str(o, key, u.text);
        if (r >= 0)
                r = cursor_skip(c, u.consumed); /* consumed <= n <= remaining */
        utf16_done(&u);
        return r;
}

/* --- UEFI device paths ---------------------------------------------------------------------- */

static void dp_hex(FILE *f, const struct cursor *c) {
        const uint8_t *p = cursor_peek(c);

        for (size_t i = 0; i < cursor_remaining(c); i++)
                fprintf(f, "%02x", p[i]);
}

static void dp_ascii(FILE *f, const struct cursor *c) {
        const uint8_t *p = cursor_peek(c);

        for (size_t i = 0; i < cursor_remaining(c) && p[i] != 0; i++)
                if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
                        fputc(p[i], f);
                else
                        fprintf(f, "\\x%02x", p[i]);
}

static int dp_vendor(FILE *f, const char *name, struct cursor *n) {
        const uint8_t *g;
        char buf[GUID_STRING_MAX];

        if (cursor_take(n, 16, &g) < 0)
                return -EBADMSG;
        fprintf(f, "%s(%s", name, guid_to_string(g, buf));
        if (!cursor_eof(n)) {
                fputc(',', f);
                dp_hex(f, n);
        }
        fputc(')', f);
        return 0;
}

/* One node. Returns -EBADMSG when the node is too short for its type, -ENOMEM. */
static int dp_node(FILE *f, uint8_t type, uint8_t subtype, struct cursor *n) {
        const uint8_t *g;
        char buf[GUID_STRING_MAX];
        int r;

        switch (type) {
        case 0x01: /* hardware */
                switch (subtype) {
                case 0x01: { /* PCI */
                        uint8_t function, device;
                        if (cursor_u8(n, &function) < 0 || cursor_u8(n, &device) < 0)
                                return -EBADMSG;
                        fprintf(f, "Pci(0x%x,0x%x)", device, function);
                        return 0;
                }
                case 0x02: { /* PC card */
                        uint8_t function;
                        if (cursor_u8(n, &function) < 0)
                                return -EBADMSG;
                        fprintf(f, "PcCard(0x%x)", function);
                        return 0;
                }
                case 0x03: { /* memory mapped */
                        uint32_t memtype;
                        uint64_t start, end;
                        if (cursor_le32(n, &memtype) < 0 || cursor_le64(n, &start) < 0 || cursor_le64(n, &end) < 0)
                                return -EBADMSG;
                        fprintf(f, "MemoryMapped(0x%" PRIx32 ",0x%" PRIx64 ",0x%" PRIx64 ")", memtype, start, end);
                        return 0;
                }
                case 0x04:
                        return dp_vendor(f, "VenHw", n);
                case 0x05: { /* controller */
                        uint32_t ctrl;
                        if (cursor_le32(n, &ctrl) < 0)
                                return -EBADMSG;
                        fprintf(f, "Ctrl(0x%" PRIx32 ")", ctrl);
                        return 0;
                }
                }
                break;

        case 0x02: /* ACPI */
                switch (subtype) {
                case 0x01: {
                        uint32_t hid, uid;
                        if (cursor_le32(n, &hid) < 0 || cursor_le32(n, &uid) < 0)
                                return -EBADMSG;
                        if (hid == 0x0a0341d0)
                                fprintf(f, "PciRoot(0x%" PRIx32 ")", uid);
                        else if (hid == 0x0a0841d0)
                                fprintf(f, "PcieRoot(0x%" PRIx32 ")", uid);
                        else if ((hid & 0xffff) == 0x41d0)
                                fprintf(f, "Acpi(PNP%04" PRIX32 ",0x%" PRIx32 ")", hid >> 16, uid);
                        else
                                fprintf(f, "Acpi(0x%08" PRIx32 ",0x%" PRIx32 ")", hid, uid);
                        return 0;
                }
                case 0x03: {
                        uint32_t adr;
                        if (cursor_le32(n, &adr) < 0)
                                return -EBADMSG;
                        fprintf(f, "AcpiAdr(0x%" PRIx32 ")", adr);
                        return 0;
                }
                }
                break;

        case 0x03: /* messaging */
                switch (subtype) {
                case 0x01: { /* ATAPI */
                        uint8_t primary, slave;
                        uint16_t lun;
                        if (cursor_u8(n, &primary) < 0 || cursor_u8(n, &slave) < 0 || cursor_le16(n, &lun) < 0)
                                return -EBADMSG;
                        fprintf(f, "Ata(%u,%u,%u)", primary, slave, lun);
                        return 0;
                }
                case 0x02: { /* SCSI */
                        uint16_t pun, lun;
                        if (cursor_le16(n, &pun) < 0 || cursor_le16(n, &lun) < 0)
                                return -EBADMSG;
                        fprintf(f, "Scsi(%u,%u)", pun, lun);
                        return 0;
                }
                case 0x05: { /* USB */
                        uint8_t port, interface;
                        if (cursor_u8(n, &port) < 0 || cursor_u8(n, &interface) < 0)
                                return -EBADMSG;
                        fprintf(f, "USB(%u,%u)", port, interface);
                        return 0;
                }
                case 0x0a:
                        return dp_vendor(f, "VenMsg", n);
                case 0x0b: { /* MAC address */
                        const uint8_t *mac;
                        uint8_t iftype;
                        if (cursor_take(n, 32, &mac) < 0 || cursor_u8(n, &iftype) < 0)
                                return -EBADMSG;
                        fputs("MAC(", f);
                        for (size_t i = 0; i < (iftype <= 1 ? 6U : 32U); i++)
                                fprintf(f, "%02x", mac[i]);
                        fprintf(f, ",%u)", iftype);
                        return 0;
                }
                case 0x0c: { /* IPv4 */
                        const uint8_t *local, *remote;
                        uint16_t lport, rport, proto;
                        uint8_t is_static;
                        if (cursor_take(n, 4, &local) < 0 || cursor_take(n, 4, &remote) < 0 ||
                            cursor_le16(n, &lport) < 0 || cursor_le16(n, &rport) < 0 || cursor_le16(n, &proto) < 0 ||
                            cursor_u8(n, &is_static) < 0)
                                return -EBADMSG;
                        fprintf(f, "IPv4(%u.%u.%u.%u,%u.%u.%u.%u,%u,%u)", remote[0], remote[1], remote[2], remote[3],
                                local[0], local[1], local[2], local[3], proto, is_static);
                        return 0;
                }
                case 0x12: { /* SATA */
                        uint16_t hba, pmp, lun;
                        if (cursor_le16(n, &hba) < 0 || cursor_le16(n, &pmp) < 0 || cursor_le16(n, &lun) < 0)
                                return -EBADMSG;
                        fprintf(f, "Sata(%u,%u,%u)", hba, pmp, lun);
                        return 0;
                }
                case 0x17: { /* NVMe namespace */
                        const uint8_t *eui;
                        uint32_t nsid;
                        if (cursor_le32(n, &nsid) < 0 || cursor_take(n, 8, &eui) < 0)
                                return -EBADMSG;
                        fprintf(f, "NVMe(0x%" PRIx32 ",%02X-%02X-%02X-%02X-%02X-%02X-%02X-%02X)", nsid, eui[0], eui[1],
                                eui[2], eui[3], eui[4], eui[5], eui[6], eui[7]);
                        return 0;
                }
                case 0x18: /* URI */
                        fputs("Uri(", f);
                        dp_ascii(f, n);
                        fputc(')', f);
                        return 0;
                case 0x1a:   /* SD */
                case 0x1d: { /* eMMC */
                        uint8_t slot;
                        if (cursor_u8(n, &slot) < 0)
                                return -EBADMSG;
                        fprintf(f, "%s(%u)", subtype == 0x1a ? "SD" : "eMMC", slot);
                        return 0;
                }
                }
                break;

        case 0x04: /* media */
                switch (subtype) {
                case 0x01: { /* hard drive */
                        const uint8_t *sig;
                        uint64_t start, size;
                        uint32_t part;
                        uint8_t format, sigtype;
                        if (cursor_le32(n, &part) < 0 || cursor_le64(n, &start) < 0 || cursor_le64(n, &size) < 0 ||
                            cursor_take(n, 16, &sig) < 0 || cursor_u8(n, &format) < 0 || cursor_u8(n, &sigtype) < 0)
                                return -EBADMSG;
                        if (sigtype == 2)
                                fprintf(f, "HD(%" PRIu32 ",GPT,%s,0x%" PRIx64 ",0x%" PRIx64 ")", part,
                                        guid_to_string(sig, buf), start, size);
                        else if (sigtype == 1)
                                fprintf(f, "HD(%" PRIu32 ",MBR,0x%08" PRIx32 ",0x%" PRIx64 ",0x%" PRIx64 ")", part,
                                        load_le32(sig), start, size);
                        else
                                fprintf(f, "HD(%" PRIu32 ",%u,0,0x%" PRIx64 ",0x%" PRIx64 ")", part, sigtype, start, size);
                        return 0;
                }
                case 0x02: { /* CD-ROM */
                        uint32_t entry;
                        uint64_t start, size;
                        if (cursor_le32(n, &entry) < 0 || cursor_le64(n, &start) < 0 || cursor_le64(n, &size) < 0)
                                return -EBADMSG;
                        fprintf(f, "CDROM(%" PRIu32 ",0x%" PRIx64 ",0x%" PRIx64 ")", entry, start, size);
                        return 0;
                }
                case 0x03:
                        return dp_vendor(f, "VenMedia", n);
                case 0x04: { /* file path */
                        struct utf16 u;
                        r = utf16_decode(cursor_peek(n), cursor_remaining(n), false, &u);
                        if (r < 0)
                                return r;
                        if (u.error)
                                return -EILSEQ;
                        fprintf(f, "File(%s)", u.text);
                        utf16_done(&u);
                        return 0;
                }
                case 0x05:
                case 0x06:
                case 0x07:
                        if (cursor_take(n, 16, &g) < 0)
                                return -EBADMSG;
                        fprintf(f, "%s(%s)", subtype == 0x05 ? "Media" : subtype == 0x06 ? "FvFile" : "FvVol",
                                guid_to_string(g, buf));
                        return 0;
                case 0x08: { /* relative offset range */
                        uint32_t reserved;
                        uint64_t start, end;
                        if (cursor_le32(n, &reserved) < 0 || cursor_le64(n, &start) < 0 || cursor_le64(n, &end) < 0)
                                return -EBADMSG;
                        fprintf(f, "Offset(0x%" PRIx64 ",0x%" PRIx64 ")", start, end);
                        return 0;
                }
                }
                break;

        case 0x05: /* BIOS boot specification */
                if (subtype == 0x01) {
                        uint16_t devtype, status;
                        if (cursor_le16(n, &devtype) < 0 || cursor_le16(n, &status) < 0)
                                return -EBADMSG;
                        fprintf(f, "BBS(%u,", devtype);
                        dp_ascii(f, n);
                        fprintf(f, ",0x%x)", status);
                        return 0;
                }
                break;
        }

        fprintf(f, "Path(%u,%u,", type, subtype);
        dp_hex(f, n);
        fputc(')', f);
        return 0;
}

/* Renders a device path as text. A malformed node stops the rendering and sets `err` and
 * `err_offset`; the text so far is still returned. Returns 0 or -ENOMEM. */
static int device_path_to_text(struct cursor c, char **ret, char *err, size_t errlen, size_t *err_offset) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t size = 0, index = 0;
        bool first = true;
        int r;

        err[0] = 0;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        for (; !cursor_eof(&c); index++) {
                size_t at = cursor_offset(&c);
                uint8_t type, subtype;
                uint16_t len;
                struct cursor node;

                if (cursor_remaining(&c) < 4) {
                        (void) snprintf(err, errlen, "truncated device path node %zu (%zu bytes)", index,
                                        cursor_remaining(&c));
                        *err_offset = at;
                        break;
                }
                if (cursor_u8(&c, &type) < 0 || cursor_u8(&c, &subtype) < 0 || cursor_le16(&c, &len) < 0)
                        return -EBADMSG; /* cannot happen: checked above */
                if (len < 4) {
                        (void) snprintf(err, errlen, "device path node %zu length %u < 4", index, len);
                        *err_offset = at;
                        break;
                }
                if (cursor_sub(&c, len - 4U, &node) < 0) {
                        (void) snprintf(err, errlen, "device path node %zu length %u exceeds remaining %zu bytes",
                                        index, len, cursor_remaining(&c) + 4);
                        *err_offset = at;
                        break;
                }
                if (type == 0x7f) {
                        if (subtype == 0xff)
                                break; /* end of the whole path */
                        fputc(',', f); /* end of one instance */
                        first = true;
                        continue;
                }
                if (!first)
                        fputc('/', f);
                first = false;

                r = dp_node(f, type, subtype, &node);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        (void) snprintf(err, errlen, "device path node %zu (type 0x%02x subtype 0x%02x, length %u) %s",
                                        index, type, subtype, len,
                                        r == -EILSEQ ? "has a malformed UTF-16 path" : "too short");
                        *err_offset = at;
                        break;
                }
        }

        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int add_device_path(json_object *o, json_object *errors, const char *key, struct cursor c) {
        _cleanup_free_ char *text = NULL;
        size_t err_offset = 0;
        char err[160];
        int r;

        r = device_path_to_text(c, &text, err, sizeof(err), &err_offset);
        if (r < 0)
                return r;
        r = add_str(o, key, text);
        if (r < 0)
                return r;
        if (err[0])
                return decode_error(errors, err_offset, "%s", err);
        return 0;
}

/* --- event data decoders: each fills `o`, recording a decode_error when the data is malformed -- */

/* UEFI_IMAGE_LOAD_EVENT */
static int decode_image_load(struct cursor c, json_object *o) {
        uint64_t location, length, link, dp_len;
        struct cursor dp;
        int r;

        if (cursor_remaining(&c) < 32)
                return decode_error(o, cursor_offset(&c), "truncated UEFI_IMAGE_LOAD_EVENT (%zu bytes, need 32)",
                                    cursor_remaining(&c));
        if (cursor_le64(&c, &location) < 0 || cursor_le64(&c, &length) < 0 || cursor_le64(&c, &link) < 0 ||
            cursor_le64(&c, &dp_len) < 0)
                return -EBADMSG;

        if ((r = add_hex_u64(o, "image_location", location)) < 0 || (r = add_u64(o, "image_length", length)) < 0 ||
            (r = add_hex_u64(o, "image_link_time_address", link)) < 0 ||
            (r = add_u64(o, "device_path_length", dp_len)) < 0)
                return r;

        if (dp_len > cursor_remaining(&c))
                return decode_error(o, cursor_offset(&c), "device path length %" PRIu64 " exceeds remaining %zu bytes",
                                    dp_len, cursor_remaining(&c));
        if (cursor_sub(&c, (size_t) dp_len, &dp) < 0)
                return -EBADMSG;
        return add_device_path(o, o, "device_path", dp);
}

static bool is_boot_option_name(const char *name) {
        if (strlen(name) != 8 || strncmp(name, "Boot", 4) != 0)
                return false;
        for (size_t i = 4; i < 8; i++)
                if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'F')))
                        return false;
        return true;
}

/* EFI_LOAD_OPTION */
static int decode_load_option(struct cursor c, json_object *top) {
        _cleanup_json_ json_object *o = json_object_new_object();
        uint32_t attributes;
        uint16_t fp_len;
        struct cursor fp;
        int r;

        if (!o)
                return -ENOMEM;
        if (cursor_le32(&c, &attributes) < 0 || cursor_le16(&c, &fp_len) < 0) {
                r = decode_error(top, cursor_offset(&c), "truncated EFI_LOAD_OPTION (%zu bytes)", cursor_remaining(&c));
                goto out;
        }
        if ((r = add_int(o, "attributes", attributes)) < 0 || (r = add_bool(o, "active", attributes & 1)) < 0 ||
            (r = add_int(o, "file_path_list_length", fp_len)) < 0)
                return r;
        r = add_utf16(o, top, "description", &c, cursor_remaining(&c), true);
        if (r < 0 || !json_object_object_get_ex(o, "description", NULL))
                goto out;
        if (cursor_sub(&c, fp_len, &fp) < 0) {
                r = decode_error(top, cursor_offset(&c), "FilePathListLength %u exceeds remaining %zu bytes", fp_len,
                                 cursor_remaining(&c));
                goto out;
        }
        r = add_device_path(o, top, "device_path", fp);
        if (r < 0)
                return r;
        if (!cursor_eof(&c))
                r = add_hex_bytes(o, "optional_data_hex", cursor_peek(&c), cursor_remaining(&c));
out:
        if (r < 0)
                return r;
        return add(top, "boot_option", TAKE_PTR(o));
}

static int decode_variable_data(const char *name, const uint8_t guid[static 16], struct cursor c, json_object *o) {
        static const char *const booleans[] = { "SecureBoot", "SetupMode", "AuditMode", "DeployedMode" };
        size_t n = cursor_remaining(&c);

        if (memcmp(guid, efi_global_variable_guid, 16) != 0)
                return 0;

        for (size_t i = 0; i < ELEMENTSOF(booleans); i++)
                if (strcmp(name, booleans[i]) == 0) {
                        if (n == 1)
                                return add_bool(o, "enabled", cursor_peek(&c)[0] != 0);
                        return 0;
                }

        if (strcmp(name, "BootOrder") == 0) {
                _cleanup_json_ json_object *a = NULL;
                uint16_t v;

                if (n % 2 != 0)
                        return decode_error(o, cursor_offset(&c), "odd-length BootOrder (%zu bytes)", n);
                a = json_object_new_array();
                if (!a)
                        return -ENOMEM;
                while (cursor_le16(&c, &v) >= 0) {
                        char buf[9];
                        int r;

                        (void) snprintf(buf, sizeof(buf), "Boot%04X", v);
                        r = append(a, json_object_new_string(buf));
                        if (r < 0)
                                return r;
                }
                return add(o, "boot_order", TAKE_PTR(a));
        }

        if (strcmp(name, "BootCurrent") == 0 || strcmp(name, "BootNext") == 0) {
                char buf[9];
                uint16_t v;

                if (n != 2)
                        return decode_error(o, cursor_offset(&c), "%s has %zu bytes, expected 2", name, n);
                if (cursor_le16(&c, &v) < 0)
                        return -EBADMSG;
                (void) snprintf(buf, sizeof(buf), "Boot%04X", v);
                return add_str(o, "boot_option_name", buf);
        }

        if (is_boot_option_name(name))
                return decode_load_option(c, o);

        return 0;
}

/* UEFI_VARIABLE_DATA */
static int decode_variable(struct cursor c, json_object *o) {
        const uint8_t *guid;
        uint64_t name_len, data_len;
        struct cursor nc, vd;
        const char *name;
        json_object *jname;
        int r;

        if (cursor_remaining(&c) < 32)
                return decode_error(o, cursor_offset(&c), "truncated UEFI_VARIABLE_DATA (%zu bytes, need 32)",
                                    cursor_remaining(&c));
        if (cursor_take(&c, 16, &guid) < 0 || cursor_le64(&c, &name_len) < 0 || cursor_le64(&c, &data_len) < 0)
                return -EBADMSG;
        if ((r = add_guid(o, "variable_guid", guid)) < 0 || (r = add_u64(o, "unicode_name_length", name_len)) < 0 ||
            (r = add_u64(o, "variable_data_length", data_len)) < 0)
                return r;

        if (name_len > cursor_remaining(&c) / 2)
                return decode_error(o, cursor_offset(&c), "UnicodeNameLength %" PRIu64 " exceeds remaining %zu bytes",
                                    name_len, cursor_remaining(&c));
        if (cursor_sub(&c, (size_t) name_len * 2, &nc) < 0)
                return -EBADMSG;
        r = add_utf16(o, o, "unicode_name", &nc, cursor_remaining(&nc), false);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(o, "unicode_name", &jname))
                return 0;
        name = json_object_get_string(jname);

        if (data_len > cursor_remaining(&c))
                return decode_error(o, cursor_offset(&c), "VariableDataLength %" PRIu64 " exceeds remaining %zu bytes",
                                    data_len, cursor_remaining(&c));
        if (cursor_sub(&c, (size_t) data_len, &vd) < 0)
                return -EBADMSG;
        r = add_hex_bytes(o, "variable_data_hex", cursor_peek(&vd), cursor_remaining(&vd));
        if (r < 0)
                return r;
        return decode_variable_data(name, guid, vd, o);
}

/* UEFI_PLATFORM_FIRMWARE_BLOB / UEFI_PLATFORM_FIRMWARE_BLOB2 */
static int decode_blob(struct cursor c, json_object *o, bool v2) {
        uint64_t base, length;
        int r;

        if (v2) {
                uint8_t desc_len;
                struct cursor desc;

                if (cursor_u8(&c, &desc_len) < 0 || cursor_sub(&c, desc_len, &desc) < 0)
                        return decode_error(o, cursor_offset(&c), "truncated UEFI_PLATFORM_FIRMWARE_BLOB2 description");
                r = add_text(o, "blob_description", &desc);
                if (r < 0)
                        return r;
        }
        if (cursor_remaining(&c) < 16)
                return decode_error(o, cursor_offset(&c), "truncated firmware blob (%zu bytes, need 16)", cursor_remaining(&c));
        if (cursor_le64(&c, &base) < 0 || cursor_le64(&c, &length) < 0)
                return -EBADMSG;
        if ((r = add_hex_u64(o, "blob_base", base)) < 0)
                return r;
        return add_hex_u64(o, "blob_length", length);
}

/* UEFI_HANDOFF_TABLE_POINTERS */
static int decode_handoff_tables(struct cursor c, json_object *o) {
        _cleanup_json_ json_object *a = NULL;
        uint64_t count;
        int r;

        if (cursor_le64(&c, &count) < 0)
                return decode_error(o, cursor_offset(&c), "truncated UEFI_HANDOFF_TABLE_POINTERS");
        if ((r = add_u64(o, "number_of_tables", count)) < 0)
                return r;
        if (count > cursor_remaining(&c) / 24)
                return decode_error(o, cursor_offset(&c), "%" PRIu64 " tables exceed remaining %zu bytes", count,
                                    cursor_remaining(&c));
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++) {
                _cleanup_json_ json_object *t = json_object_new_object();
                const uint8_t *guid;
                uint64_t table;

                if (!t)
                        return -ENOMEM;
                if (cursor_take(&c, 16, &guid) < 0 || cursor_le64(&c, &table) < 0)
                        return -EBADMSG;
                if ((r = add_guid(t, "vendor_guid", guid)) < 0 || (r = add_hex_u64(t, "vendor_table", table)) < 0 ||
                    (r = append(a, TAKE_PTR(t))) < 0)
                        return r;
        }
        return add(o, "tables", TAKE_PTR(a));
}

/* TCG_PCClientTaggedEvent */
static int decode_tagged(struct cursor c, json_object *o) {
        uint32_t id, size;
        struct cursor d;
        char buf[11];
        int r;

        if (cursor_remaining(&c) < 8)
                return decode_error(o, cursor_offset(&c), "truncated TCG_PCClientTaggedEvent (%zu bytes, need 8)",
                                    cursor_remaining(&c));
        if (cursor_le32(&c, &id) < 0 || cursor_le32(&c, &size) < 0)
                return -EBADMSG;
        (void) snprintf(buf, sizeof(buf), "0x%08" PRIx32, id);
        if ((r = add_str(o, "tagged_event_id", buf)) < 0 || (r = add_int(o, "tagged_event_data_size", size)) < 0)
                return r;
        if (cursor_sub(&c, size, &d) < 0)
                return decode_error(o, cursor_offset(&c), "taggedEventDataSize %" PRIu32 " exceeds remaining %zu bytes",
                                    size, cursor_remaining(&c));
        if (looks_ascii(cursor_peek(&d), cursor_remaining(&d)))
                return add_text(o, "tagged_event_data", &d);
        return add_hex_bytes(o, "tagged_event_data_hex", cursor_peek(&d), cursor_remaining(&d));
}

/* A string that is either ASCII/UTF-8 or UTF-16LE (EV_IPL from GRUB vs systemd-boot). */
static int decode_string(struct cursor c, json_object *o) {
        int r;

        if (looks_utf16(cursor_peek(&c), cursor_remaining(&c))) {
                if ((r = add_str(o, "encoding", "utf-16le")) < 0)
                        return r;
                return add_utf16(o, o, "string", &c, cursor_remaining(&c), false);
        }
        if (cursor_eof(&c))
                return 0;
        if ((r = add_str(o, "encoding", "ascii")) < 0)
                return r;
        return add_text(o, "string", &c);
}

/* A UTF-16 string (EDK2, GCE), an ASCII string or a GUID, depending on the firmware. */
static int decode_crtm_version(struct cursor c, json_object *o) {
        const uint8_t *p = cursor_peek(&c);
        size_t n = cursor_remaining(&c);

        if (looks_utf16(p, n))
                return add_utf16(o, o, "version", &c, n, false);
        if (looks_ascii(p, n))
                return add_text(o, "version", &c);
        if (n == 16)
                return add_guid(o, "guid", p);
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0)
                        return 0; /* unrecognised: shown as hex */
        return n > 0 ? add_str(o, "version", "") : 0;
}

static int decode_separator(struct cursor c, json_object *o) {
        uint32_t v;

        if (cursor_remaining(&c) != 4)
                return 0;
        if (cursor_le32(&c, &v) < 0)
                return -EBADMSG;
        return add_int(o, "value", v);
}

static int decode_spec_id(const struct tcg_eventlog *log, const struct tcg_event *ev, json_object *o) {
        _cleanup_json_ json_object *algs = json_object_new_array();
        char version[16];
        int r;

        if (!algs)
                return -ENOMEM;
        (void) snprintf(version, sizeof(version), "%u.%u.%u", log->spec_version_major, log->spec_version_minor,
                        log->spec_errata);
        if ((r = add_str(o, "signature", TCG_SPEC_ID_EVENT03)) < 0 || (r = add_int(o, "platform_class", log->platform_class)) < 0 ||
            (r = add_str(o, "spec_version", version)) < 0 || (r = add_int(o, "uintn_size", log->uintn_size)) < 0)
                return r;
        for (size_t i = 0; i < log->n_algs && i < TCG_EVENT_MAX_DIGESTS; i++) {
                _cleanup_json_ json_object *a = json_object_new_object();
                int h = cnos_hash_from_tpm_alg(log->algs[i].alg);
                char id[7];

                if (!a)
                        return -ENOMEM;
                (void) snprintf(id, sizeof(id), "0x%04x", log->algs[i].alg);
                if ((r = add_str(a, "algorithm_id", id)) < 0 ||
                    (h >= 0 && (r = add_str(a, "algorithm", cnos_hash_name(h))) < 0) ||
                    (r = add_int(a, "digest_size", log->algs[i].size)) < 0 || (r = append(algs, TAKE_PTR(a))) < 0)
                        return r;
        }
        if ((r = add(o, "algorithms", TAKE_PTR(algs))) < 0 || (r = add_int(o, "vendor_info_size", log->vendor_info_size)) < 0 ||
            (r = add_hex_bytes(o, "vendor_info_hex", log->vendor_info, log->vendor_info_size)) < 0)
                return r;
        if (log->spec_id_event_size != ev->data_size)
                return add_int(o, "declared_event_size", log->spec_id_event_size);
        return 0;
}

static int decode_no_action(const struct tcg_eventlog *log, const struct tcg_event *ev, struct cursor c, json_object *o) {
        uint8_t locality;
        int r;

        if (log->crypto_agile && ev->index == 0)
                return decode_spec_id(log, ev, o);
        if (tcg_event_startup_locality(ev, &locality)) {
                if ((r = add_str(o, "signature", TCG_STARTUP_LOCALITY)) < 0)
                        return r;
                return add_int(o, "startup_locality", locality);
        }
        /* Other EV_NO_ACTION events (SP800-155, NvIndexInstance, ...) start with a 16-byte signature. */
        if (cursor_remaining(&c) >= 16 && memchr(cursor_peek(&c), 0, 16) && looks_ascii(cursor_peek(&c), 16)) {
                struct cursor sig;

                if (cursor_sub(&c, 16, &sig) < 0)
                        return -EBADMSG;
                return add_text(o, "signature", &sig);
        }
        return 0;
}

/* UEFI_GPT_DATA */
static int decode_gpt(struct cursor c, json_object *o) {
        _cleanup_json_ json_object *parts = NULL;
        const uint8_t *h, *disk_guid;
        size_t header_offset = cursor_offset(&c);
        uint64_t count;
        uint32_t n_entries, entry_size;
        int r;

        if (cursor_take(&c, GPT_HEADER_SIZE, &h) < 0)
                return decode_error(o, cursor_offset(&c), "truncated GPT header (%zu bytes, need %u)",
                                    cursor_remaining(&c), GPT_HEADER_SIZE);
        disk_guid = h + 56;
        n_entries = load_le32(h + 80);
        entry_size = load_le32(h + 84);
        if ((r = add_str(o, "signature", memcmp(h, "EFI PART", 8) == 0 ? "EFI PART" : "invalid")) < 0 ||
            (r = add_hex_u64(o, "revision", load_le32(h + 8))) < 0 ||
            (r = add_int(o, "header_size", load_le32(h + 12))) < 0 ||
            (r = add_u64(o, "my_lba", load_le64(h + 24))) < 0 ||
            (r = add_u64(o, "alternate_lba", load_le64(h + 32))) < 0 ||
            (r = add_u64(o, "first_usable_lba", load_le64(h + 40))) < 0 ||
            (r = add_u64(o, "last_usable_lba", load_le64(h + 48))) < 0 || (r = add_guid(o, "disk_guid", disk_guid)) < 0 ||
            (r = add_u64(o, "partition_entry_lba", load_le64(h + 72))) < 0 ||
            (r = add_int(o, "number_of_partition_entries", n_entries)) < 0 ||
            (r = add_int(o, "size_of_partition_entry", entry_size)) < 0)
                return r;

        if (cursor_le64(&c, &count) < 0)
                return decode_error(o, cursor_offset(&c), "truncated GPT event: NumberOfPartitions missing");
        if ((r = add_u64(o, "number_of_partitions", count)) < 0)
                return r;
        if (entry_size < GPT_ENTRY_MIN_SIZE || entry_size > GPT_ENTRY_MAX_SIZE)
                return decode_error(o, header_offset + 84,
                                    "GPT partition entry size %" PRIu32 " out of range", entry_size);
        if (count > cursor_remaining(&c) / entry_size)
                return decode_error(o, cursor_offset(&c), "%" PRIu64 " GPT partitions of %" PRIu32 " bytes exceed remaining %zu bytes",
                                    count, entry_size, cursor_remaining(&c));

        parts = json_object_new_array();
        if (!parts)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++) {
                _cleanup_json_ json_object *p = json_object_new_object();
                struct cursor e, name;
                const uint8_t *type_guid, *unique_guid;
                uint64_t first, last, attrs;

                if (!p)
                        return -ENOMEM;
                if (cursor_sub(&c, entry_size, &e) < 0 || cursor_take(&e, 16, &type_guid) < 0 ||
                    cursor_take(&e, 16, &unique_guid) < 0 || cursor_le64(&e, &first) < 0 || cursor_le64(&e, &last) < 0 ||
                    cursor_le64(&e, &attrs) < 0 || cursor_sub(&e, GPT_NAME_SIZE, &name) < 0)
                        return -EBADMSG; /* cannot happen: sizes checked above */
                if ((r = add_guid(p, "partition_type_guid", type_guid)) < 0 ||
                    (r = add_guid(p, "unique_partition_guid", unique_guid)) < 0 || (r = add_u64(p, "starting_lba", first)) < 0 ||
                    (r = add_u64(p, "ending_lba", last)) < 0 || (r = add_hex_u64(p, "attributes", attrs)) < 0 ||
                    (r = add_utf16(p, o, "name", &name, GPT_NAME_SIZE, false)) < 0 || (r = append(parts, TAKE_PTR(p))) < 0)
                        return r;
        }
        return add(o, "partitions", TAKE_PTR(parts));
}

int eventlog_decode_event(const struct tcg_eventlog *log, const struct tcg_event *ev, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        struct cursor c;
        int r = 0;

        if (!o)
                return -ENOMEM;
        c = cursor_init(ev->data, ev->data_size);
        c.base = ev->data_offset;

        switch (ev->type) {
        case EV_NO_ACTION:
                r = decode_no_action(log, ev, c, o);
                break;
        case EV_EFI_ACTION:
        case EV_ACTION:
        case EV_OMIT_BOOT_DEVICE_EVENTS:
                if (ev->data_size > 0)
                        r = add_text(o, "string", &c);
                break;
        case EV_SEPARATOR:
                r = decode_separator(c, o);
                break;
        case EV_IPL:
                r = decode_string(c, o);
                break;
        case EV_EVENT_TAG:
                r = decode_tagged(c, o);
                break;
        case EV_S_CRTM_VERSION:
                r = decode_crtm_version(c, o);
                break;
        case EV_POST_CODE:
        case EV_S_CRTM_CONTENTS:
                /* Either a string ("POST CODE", "ACPI DATA") or a UEFI_PLATFORM_FIRMWARE_BLOB. */
                if (looks_ascii(ev->data, ev->data_size))
                        r = add_text(o, "string", &c);
                else if (ev->data_size == 16)
                        r = decode_blob(c, o, false);
                break;
        case EV_EFI_PLATFORM_FIRMWARE_BLOB:
                r = decode_blob(c, o, false);
                break;
        case EV_EFI_PLATFORM_FIRMWARE_BLOB2:
                r = decode_blob(c, o, true);
                break;
        case EV_EFI_BOOT_SERVICES_APPLICATION:
        case EV_EFI_BOOT_SERVICES_DRIVER:
        case EV_EFI_RUNTIME_SERVICES_DRIVER:
                r = decode_image_load(c, o);
                break;
        case EV_EFI_VARIABLE_DRIVER_CONFIG:
        case EV_EFI_VARIABLE_BOOT:
        case EV_EFI_VARIABLE_BOOT2:
        case EV_EFI_VARIABLE_AUTHORITY:
                r = decode_variable(c, o);
                break;
        case EV_EFI_GPT_EVENT:
        case EV_EFI_GPT_EVENT2:
                r = decode_gpt(c, o);
                break;
        case EV_EFI_HANDOFF_TABLES:
                r = decode_handoff_tables(c, o);
                break;
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

/* --- whole log ------------------------------------------------------------------------------ */

static int digests_to_json(const struct tcg_event *ev, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < ev->n_digests && i < TCG_EVENT_MAX_DIGESTS; i++) {
                const struct tcg_digest *d = &ev->digests[i];
                char alg[7];

                (void) snprintf(alg, sizeof(alg), "0x%04x", d->alg);
                r = add_hex_bytes(o, d->hash >= 0 ? cnos_hash_name(d->hash) : alg, d->bytes, d->size);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int event_to_json(const struct tcg_eventlog *log, const struct tcg_event *ev, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *digests = NULL, *data = NULL;
        const char *name = tcg_event_type_name(ev->type);
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = digests_to_json(ev, &digests)) < 0 || (r = eventlog_decode_event(log, ev, &data)) < 0)
                return r;
        if ((r = add_u64(o, "index", ev->index)) < 0 || (r = add_u64(o, "offset", ev->offset)) < 0 ||
            (r = add_int(o, "pcr", ev->pcr)) < 0 || (r = add_str(o, "type", name ?: "unknown")) < 0 ||
            (r = add_int(o, "type_value", ev->type)) < 0 || (r = add(o, "digests", TAKE_PTR(digests))) < 0 ||
            (r = add_int(o, "data_size", ev->data_size)) < 0 ||
            (r = add_hex_bytes(o, "data_hex", ev->data, ev->data_size)) < 0 || (r = add(o, "data", TAKE_PTR(data))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int banks_to_json(const struct tcg_eventlog *log, json_object **ret, struct cnos_err *e) {
        _cleanup_json_ json_object *banks = json_object_new_object();
        int r;

        if (!banks)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        for (int h = 0; h < _CNOS_HASH_MAX; h++) {
                _cleanup_json_ json_object *bank = NULL;
                uint8_t pcrs[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE];
                uint32_t extended;

                if (!tcg_eventlog_has_bank(log, h))
                        continue;
                r = tcg_eventlog_replay(log, h, pcrs, &extended, e);
                if (r < 0)
                        return r;
                bank = json_object_new_object();
                if (!bank)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                for (unsigned i = 0; i < TCG_PCR_MAX; i++) {
                        char key[4];

                        if (i >= 16 && !(extended & (UINT32_C(1) << i)))
                                continue;
                        (void) snprintf(key, sizeof(key), "%u", i);
                        if (add_hex_bytes(bank, key, pcrs[i], cnos_hash_size(h)) < 0)
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                }
                if (add(banks, cnos_hash_name(h), TAKE_PTR(bank)) < 0)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        *ret = TAKE_PTR(banks);
        return 0;
}

int eventlog_to_json(const struct tcg_eventlog *log, json_object **ret, struct cnos_err *e) {
        _cleanup_json_ json_object *root = json_object_new_object(), *banks = NULL, *events = json_object_new_array();
        int r;

        if (!root || !events)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = banks_to_json(log, &banks, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < log->n_events; i++) {
                json_object *ev = NULL;

                r = event_to_json(log, &log->events[i], &ev);
                if (r < 0 || append(events, ev) < 0)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        if (add(root, "banks", TAKE_PTR(banks)) < 0 || add(root, "events", TAKE_PTR(events)) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(root);
        return 0;
}

int eventlog_print_json(FILE *f, const struct tcg_eventlog *log, struct cnos_err *e) {
        _cleanup_json_ json_object *root = NULL;
        const char *s;
        int r;

        r = eventlog_to_json(log, &root, e);
        if (r < 0)
                return r;
        s = json_object_to_json_string_ext(
                        root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        if (fputs(s, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0)
                return cnos_err_set(e, -EIO, "write error");
        return 0;
}

/* --- text ----------------------------------------------------------------------------------- */

/* Strings from the log may hold control characters: never send them to a terminal raw. */
static void print_escaped(FILE *f, const char *s) {
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                if (ch < 0x20 || ch == 0x7f)
                        fprintf(f, "\\x%02x", ch);
                else
                        fputc(ch, f);
        }
}

static bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);

        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static void print_fields(FILE *f, json_object *o, int indent);

static void print_scalar(FILE *f, json_object *v) {
        if (json_object_is_type(v, json_type_string))
                print_escaped(f, json_object_get_string(v));
        else
                fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) ?: "?", f);
}

static void print_fields(FILE *f, json_object *o, int indent) {
        json_object_object_foreach(o, key, val) {
                if (strcmp(key, "decode_error") == 0) {
                        fprintf(f, "%*sNote: could not decode: ", indent, "");
                        print_escaped(f, json_object_get_string(val));
                        fputc('\n', f);
                } else if (json_object_is_type(val, json_type_object)) {
                        fprintf(f, "%*s%s:\n", indent, "", key);
                        print_fields(f, val, indent + 2);
                } else if (json_object_is_type(val, json_type_array)) {
                        fprintf(f, "%*s%s:\n", indent, "", key);
                        for (size_t i = 0; i < json_object_array_length(val); i++) {
                                json_object *item = json_object_array_get_idx(val, i);

                                if (json_object_is_type(item, json_type_object)) {
                                        fprintf(f, "%*s- [%zu]\n", indent + 2, "", i);
                                        print_fields(f, item, indent + 4);
                                } else {
                                        fprintf(f, "%*s- ", indent + 2, "");
                                        print_scalar(f, item);
                                        fputc('\n', f);
                                }
                        }
                } else if (json_object_is_type(val, json_type_string) && endswith(key, "_hex") &&
                           (size_t) json_object_get_string_len(val) > 2 * TEXT_HEX_MAX) {
                        /* Certificates and signature lists: the JSON has them in full. */
                        fprintf(f, "%*s%s: %.*s... (%zu more bytes)\n", indent, "", key, (int) (2 * TEXT_HEX_MAX),
                                json_object_get_string(val),
                                (size_t) json_object_get_string_len(val) / 2 - TEXT_HEX_MAX);
                } else {
                        fprintf(f, "%*s%s: ", indent, "", key);
                        print_scalar(f, val);
                        fputc('\n', f);
                }
        }
}

static int print_event_text(FILE *f, const struct tcg_eventlog *log, const struct tcg_event *ev) {
        _cleanup_json_ json_object *data = NULL;
        const char *name = tcg_event_type_name(ev->type);
        char hex[2 * CNOS_HASH_MAX_SIZE + 1];
        int r;

        r = eventlog_decode_event(log, ev, &data);
        if (r < 0)
                return r;

        fprintf(f, "Event %zu at offset 0x%zx:\n", ev->index, ev->offset);
        if (ev->pcr == TCG_PCR_NONE)
                fprintf(f, "  PCR: none (0xffffffff)\n");
        else
                fprintf(f, "  PCR: %" PRIu32 "\n", ev->pcr);
        fprintf(f, "  Type: %s (0x%" PRIx32 ")\n", name ?: "unknown", ev->type);
        for (size_t i = 0; i < ev->n_digests && i < TCG_EVENT_MAX_DIGESTS; i++) {
                const struct tcg_digest *d = &ev->digests[i];

                if (d->hash >= 0)
                        fprintf(f, "  Digest %s: %s\n", cnos_hash_name(d->hash), hex_encode(d->bytes, d->size, hex));
                else
                        fprintf(f, "  Digest 0x%04x: %s\n", d->alg, hex_encode(d->bytes, d->size, hex));
        }
        fprintf(f, "  Data size: %" PRIu32 "\n", ev->data_size);

        if (json_object_object_length(data) > 0) {
                fprintf(f, "  Data:\n");
                print_fields(f, data, 4);
        }
        if (ev->data_size > 0 &&
            (json_object_object_length(data) == 0 || json_object_object_get_ex(data, "decode_error", NULL))) {
                size_t n = MIN((size_t) ev->data_size, (size_t) TEXT_HEX_MAX);

                fprintf(f, "  Data: ");
                for (size_t i = 0; i < n; i++)
                        fprintf(f, "%02x", ev->data[i]);
                if (n < ev->data_size)
                        fprintf(f, "... (%zu more bytes)", ev->data_size - n);
                fputc('\n', f);
        }
        return 0;
}

int eventlog_print_text(FILE *f, const struct tcg_eventlog *log, struct cnos_err *e) {
        int r;

        fprintf(f, "Format: %s, %zu events\n",
                log->crypto_agile ? "crypto-agile (TCG_PCR_EVENT2)" : "legacy SHA-1 (TCG_PCR_EVENT)", log->n_events);

        for (size_t i = 0; i < log->n_events; i++) {
                fputc('\n', f);
                r = print_event_text(f, log, &log->events[i]);
                if (r < 0)
                        return cnos_err_set(e, r, "out of memory");
        }

        for (int h = 0; h < _CNOS_HASH_MAX; h++) {
                uint8_t pcrs[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE];
                char hex[2 * CNOS_HASH_MAX_SIZE + 1];
                uint32_t extended;

                if (!tcg_eventlog_has_bank(log, h))
                        continue;
                r = tcg_eventlog_replay(log, h, pcrs, &extended, e);
                if (r < 0)
                        return r;
                fprintf(f, "\nPCRs %s:\n", cnos_hash_name(h));
                for (unsigned i = 0; i < TCG_PCR_MAX; i++)
                        if (i < 16 || (extended & (UINT32_C(1) << i)))
                                fprintf(f, "  %2u: %s\n", i, hex_encode(pcrs[i], cnos_hash_size(h), hex));
        }

        if (fflush(f) != 0 || ferror(f))
                return cnos_err_set(e, -EIO, "write error");
        return 0;
}
