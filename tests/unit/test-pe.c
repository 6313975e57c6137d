/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/pe.c against real PE images and the digests their origin asserts
 * (TESTDATA/pe-authenticode/expected.json), plus one negative test per validation rule, built by
 * mutating copies of those images in memory.
 *
 * Header offsets below are written out from the PE/COFF specification on purpose instead of taken
 * from struct pe_image, so a wrong offset in lib/pe.c cannot agree with itself here. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "cursor.h"
#include "fileio.h"
#include "hex.h"
#include "pe.h"

#define PE_DIR TESTDATA "/pe-authenticode"

/* PE/COFF layout, for the mutations. */
#define E_LFANEW 0x3c
#define COFF_NSECTIONS 2
#define COFF_OPTSIZE 16
#define OPT_SOH 60
#define OPT_CHECKSUM 64
#define OPT64_NDIRS 108
#define OPT64_DIRS 112
#define OPT32_NDIRS 92
#define OPT32_DIRS 96
#define SEC_RAWSIZE 16
#define SEC_RAWPTR 20

struct sample {
        const char *name;
        uint8_t *data;
        size_t size;
        struct json_object *expect; /* borrowed from `expected` */
};

static struct json_object *expected;
static struct sample samples[] = {
        { .name = "test.pecoff" },
        { .name = "HelloWorld.efi" },
};
#define PECOFF (&samples[0])
#define HELLO (&samples[1])

/* Landmarks of a PE32+ file, computed with the spec's offsets. */
struct layout {
        size_t pe, coff, opt, optsize, table, nsec, soh, checksum, ndirs, certdir, end_of_sections;
};

static void store_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void store_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static struct layout layout_of(const uint8_t *d) {
        struct layout l = {};

        l.pe = load_le32(d + E_LFANEW);
        l.coff = l.pe + 4;
        l.opt = l.coff + 20;
        l.nsec = load_le16(d + l.coff + COFF_NSECTIONS);
        l.optsize = load_le16(d + l.coff + COFF_OPTSIZE);
        l.table = l.opt + l.optsize;
        l.soh = load_le32(d + l.opt + OPT_SOH);
        l.checksum = l.opt + OPT_CHECKSUM;
        l.ndirs = l.opt + OPT64_NDIRS;
        l.certdir = l.opt + OPT64_DIRS + 4 * 8;
        for (size_t i = 0; i < l.nsec; i++) {
                const uint8_t *s = d + l.table + 40 * i;
                size_t end = (size_t) load_le32(s + SEC_RAWPTR) + load_le32(s + SEC_RAWSIZE);

                l.end_of_sections = MAX(l.end_of_sections, end);
        }
        return l;
}

static uint8_t *section_header(uint8_t *d, const struct layout *l, size_t i) {
        return d + l->table + 40 * i;
}

static uint8_t *dup_bytes(const uint8_t *d, size_t n, size_t alloc) {
        uint8_t *p = calloc(1, MAX(alloc, (size_t) 1));

        assert_non_null(p);
        memcpy(p, d, n);
        return p;
}

static const char *expect_str(const struct sample *s, const char *key) {
        struct json_object *v;

        assert_true(json_object_object_get_ex(s->expect, key, &v));
        return json_object_get_string(v);
}

static void digest_hex(const uint8_t *d, size_t n, enum cnos_hash h, char *out) {
        struct pe_image img = {};
        struct cnos_err err = {};
        uint8_t md[CNOS_HASH_MAX_SIZE];

        if (pe_parse(d, n, &img, &err) < 0)
                fail_msg("pe_parse: %s", cnos_err_msg(&err));
        if (pe_authenticode(&img, h, md, &err) < 0)
                fail_msg("pe_authenticode: %s", cnos_err_msg(&err));
        hex_encode(md, cnos_hash_size(h), out);
        pe_image_done(&img);
}

static void expect_fail(const uint8_t *d, size_t n, const char *needle) {
        struct pe_image img = {};
        struct cnos_err err = {};
        int r;

        r = pe_parse(d, n, &img, &err);
        if (r >= 0) {
                pe_image_done(&img);
                fail_msg("pe_parse of %zu bytes succeeded, expected an error containing '%s'", n, needle);
        }
        assert_int_equal(r, -EBADMSG);
        assert_int_equal(err.code, -EBADMSG);
        if (!strstr(err.msg, needle))
                fail_msg("error '%s' does not contain '%s'", err.msg, needle);
        assert_null(strchr(err.msg, '\n'));
}

static int setup(void **state) {
        expected = json_object_from_file(PE_DIR "/expected.json");
        if (!expected)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                struct json_object *files, *f;
                char path[512];

                snprintf(path, sizeof(path), PE_DIR "/%s", samples[i].name);
                if (read_file(path, 64 << 20, &samples[i].data, &samples[i].size) < 0)
                        return -1;
                if (!json_object_object_get_ex(expected, "files", &files) ||
                    !json_object_object_get_ex(files, samples[i].name, &f))
                        return -1;
                samples[i].expect = f;
        }
        return 0;
}

static int teardown(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++)
                free(samples[i].data);
        json_object_put(expected);
        return 0;
}

/* --- positive ------------------------------------------------------------------------------ */

static void test_expected_digests(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                const struct sample *s = samples + i;
                char hex[2 * CNOS_HASH_MAX_SIZE + 1];
                struct json_object *v;

                assert_true(json_object_object_get_ex(s->expect, "size", &v));
                assert_int_equal(s->size, json_object_get_int64(v));
                digest_hex(s->data, s->size, CNOS_HASH_SHA256, hex);
                assert_string_equal(hex, expect_str(s, "authenticode_sha256"));
        }
}

static void test_section_table(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                const struct sample *s = samples + i;
                struct json_object *secs, *v;
                struct pe_image img = {};
                struct cnos_err err = {};

                if (pe_parse(s->data, s->size, &img, &err) < 0)
                        fail_msg("%s: %s", s->name, cnos_err_msg(&err));
                assert_ptr_equal(img.data, s->data);
                assert_int_equal(img.size, s->size);
                assert_true(json_object_object_get_ex(s->expect, "pe32plus", &v));
                assert_int_equal(img.pe32plus, json_object_get_boolean(v));
                assert_int_equal(img.machine, 0x8664);
                assert_int_equal(img.cert_size, 0);
                assert_int_equal(img.cert_offset, 0);

                assert_true(json_object_object_get_ex(s->expect, "sections", &secs));
                assert_int_equal(img.n_sections, json_object_array_length(secs));
                for (size_t j = 0; j < img.n_sections; j++) {
                        struct json_object *js = json_object_array_get_idx(secs, j), *f;
                        const struct pe_section *ps = img.sections + j;
                        char hex[65];
                        uint8_t md[32];

#define FIELD(key) (json_object_object_get_ex(js, key, &f) ? json_object_get_int64(f) : -1)
                        assert_true(json_object_object_get_ex(js, "name", &f));
                        assert_string_equal(ps->name, json_object_get_string(f));
                        assert_int_equal(ps->virtual_size, FIELD("vsize"));
                        assert_int_equal(ps->virtual_address, FIELD("vaddr"));
                        assert_int_equal(ps->raw_size, FIELD("rawsize"));
                        assert_int_equal(ps->raw_offset, FIELD("rawptr"));
#undef FIELD
                        assert_true(ps->virtual_size <= ps->raw_size);
                        assert_true((size_t) ps->raw_offset + ps->virtual_size <= s->size);
                        assert_int_equal(cnos_hash_buffer(CNOS_HASH_SHA256, s->data + ps->raw_offset,
                                                          ps->virtual_size, md), 0);
                        assert_true(json_object_object_get_ex(js, "sha256_of_VirtualSize_bytes", &f));
                        assert_string_equal(hex_encode(md, sizeof(md), hex), json_object_get_string(f));
                        assert_ptr_equal(pe_find_section(&img, ps->name), ps);
                }
                assert_null(pe_find_section(&img, ".nothere"));
                assert_null(pe_find_section(&img, ".tex"));
                pe_image_done(&img);
                assert_null(img.sections);
                assert_int_equal(img.n_sections, 0);
        }
}

/* go-uefi/sbsign/osslsigncode pad the file with zeros to a multiple of 8 before hashing; the
 * padded bytes are then part of the last (trailing) range. */
static void test_padded8(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                const struct sample *s = samples + i;
                size_t padded = (s->size + 7) & ~(size_t) 7;
                _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, padded);
                char hex[2 * CNOS_HASH_MAX_SIZE + 1];

                assert_int_not_equal(padded, s->size); /* else the vector proves nothing */
                digest_hex(p, padded, CNOS_HASH_SHA256, hex);
                assert_string_equal(hex, expect_str(s, "padded8_sha256"));
                assert_string_not_equal(hex, expect_str(s, "authenticode_sha256"));
        }
}

/* The ranges are the whole file but CheckSum (4 bytes) and the Certificate Table entry (8 bytes),
 * in file order, and hashing their concatenation in one go gives pe_authenticode()'s digest for
 * every algorithm. */
static void test_ranges(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                const struct sample *s = samples + i;
                struct layout l = layout_of(s->data);
                _cleanup_free_ struct byte_range *ranges = NULL;
                _cleanup_free_ uint8_t *cat = NULL;
                struct pe_image img = {};
                struct cnos_err err = {};
                size_t n, total = 0, pos = 0;

                assert_int_equal(pe_parse(s->data, s->size, &img, &err), 0);
                assert_int_equal(img.checksum_offset, l.checksum);
                assert_int_equal(img.certdir_offset, l.certdir);
                assert_int_equal(img.size_of_headers, l.soh);
                assert_int_equal(pe_authenticode_ranges(&img, &ranges, &n, &err), 0);

                /* headers: 3 pieces; one range a section; the trailing data */
                assert_int_equal(n, 3 + img.n_sections + 1);
                assert_int_equal(ranges[0].offset, 0);
                assert_int_equal(ranges[0].size, l.checksum);
                assert_int_equal(ranges[1].offset, l.checksum + 4);
                assert_int_equal(ranges[1].offset + ranges[1].size, l.certdir);
                assert_int_equal(ranges[2].offset, l.certdir + 8);
                assert_int_equal(ranges[2].offset + ranges[2].size, l.soh);
                assert_int_equal(ranges[n - 1].offset, l.end_of_sections);
                assert_int_equal(ranges[n - 1].offset + ranges[n - 1].size, s->size);
                for (size_t j = 0; j < n; j++) {
                        assert_true(ranges[j].offset >= pos);
                        pos = ranges[j].offset + ranges[j].size;
                        total += ranges[j].size;
                }
                assert_int_equal(total, s->size - 12);

                cat = malloc(total);
                assert_non_null(cat);
                pos = 0;
                for (size_t j = 0; j < n; j++) {
                        memcpy(cat + pos, s->data + ranges[j].offset, ranges[j].size);
                        pos += ranges[j].size;
                }
                for (enum cnos_hash h = CNOS_HASH_SHA1; h <= CNOS_HASH_SHA384; h++) {
                        uint8_t a[CNOS_HASH_MAX_SIZE], b[CNOS_HASH_MAX_SIZE];

                        assert_int_equal(pe_authenticode(&img, h, a, &err), 0);
                        assert_int_equal(cnos_hash_buffer(h, cat, total, b), 0);
                        assert_memory_equal(a, b, cnos_hash_size(h));
                }
                pe_image_done(&img);
        }
}

/* CheckSum and the Certificate Table entry are not hashed; the bytes around them are. */
static void test_excluded_fields(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);
        char ref[65], hex[65];

        digest_hex(s->data, s->size, CNOS_HASH_SHA256, ref);

        store_le32(p + l.checksum, 0xdeadbeef);
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_equal(hex, ref);

        /* A zero-sized certificate table at an arbitrary offset is "no table". */
        store_le32(p + l.certdir, 0x12345678);
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_equal(hex, ref);

        memcpy(p, s->data, s->size);
        p[l.checksum + 4] ^= 1; /* Subsystem, right after CheckSum */
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_not_equal(hex, ref);

        memcpy(p, s->data, s->size);
        p[l.certdir - 1] ^= 1; /* Exception Table size */
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_not_equal(hex, ref);

        memcpy(p, s->data, s->size);
        p[l.certdir + 8] ^= 1; /* Base Relocation Table */
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_not_equal(hex, ref);

        memcpy(p, s->data, s->size);
        p[s->size - 1] ^= 1; /* trailing data is hashed */
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_not_equal(hex, ref);
}

/* What a signing tool produces: the file padded to 8, then an attribute certificate table
 * appended and the Certificate Table entry pointed at it. The table must drop out of the hash
 * again, leaving the padded digest the signer signed. */
static void test_signed_copy(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                const struct sample *s = samples + i;
                struct layout l = layout_of(s->data);
                size_t padded = (s->size + 7) & ~(size_t) 7, certlen = 40, total = padded + certlen;
                _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, total);
                _cleanup_free_ uint8_t *pad = dup_bytes(s->data, s->size, padded);
                struct pe_image img = {};
                struct cnos_err err = {};
                char hex[2 * CNOS_HASH_MAX_SIZE + 1], ref[2 * CNOS_HASH_MAX_SIZE + 1];

                /* WIN_CERTIFICATE: dwLength, wRevision 0x0200, wCertificateType PKCS_SIGNED_DATA */
                store_le32(p + padded, (uint32_t) certlen);
                store_le16(p + padded + 4, 0x0200);
                store_le16(p + padded + 6, 0x0002);
                memset(p + padded + 8, 0xa5, certlen - 8);
                store_le32(p + l.certdir, (uint32_t) padded);
                store_le32(p + l.certdir + 4, (uint32_t) certlen);

                assert_int_equal(pe_parse(p, total, &img, &err), 0);
                assert_int_equal(img.cert_offset, padded);
                assert_int_equal(img.cert_size, certlen);
                pe_image_done(&img);

                digest_hex(p, total, CNOS_HASH_SHA256, hex);
                assert_string_equal(hex, expect_str(s, "padded8_sha256"));
                for (enum cnos_hash h = CNOS_HASH_SHA1; h <= CNOS_HASH_SHA384; h++) {
                        digest_hex(p, total, h, hex);
                        digest_hex(pad, padded, h, ref);
                        assert_string_equal(hex, ref);
                }
        }
}

/* With NumberOfRvaAndSizes <= 4 there is no Certificate Table entry: only CheckSum is skipped. */
static void test_no_certdir(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);
        _cleanup_free_ uint8_t *cat = malloc(s->size);
        uint8_t md[32];
        char hex[65], ref[65];

        assert_non_null(cat);
        store_le32(p + l.ndirs, 4);
        memcpy(cat, p, l.checksum);
        memcpy(cat + l.checksum, p + l.checksum + 4, s->size - l.checksum - 4);
        assert_int_equal(cnos_hash_buffer(CNOS_HASH_SHA256, cat, s->size - 4, md), 0);
        hex_encode(md, sizeof(md), ref);
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_equal(hex, ref);

        store_le32(p + l.ndirs, 0);
        digest_hex(p, s->size, CNOS_HASH_SHA256, hex);
        assert_string_not_equal(hex, ref); /* NumberOfRvaAndSizes itself is hashed */
}

/* A section without raw data is skipped wherever it points; its bytes then count as trailing. */
static void test_empty_section(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);
        _cleanup_free_ struct byte_range *ranges = NULL;
        struct pe_image img = {};
        size_t n, total = 0;

        store_le32(section_header(p, &l, 4) + SEC_RAWSIZE, 0);
        store_le32(section_header(p, &l, 4) + SEC_RAWPTR, 0xffffffff);
        assert_int_equal(pe_parse(p, s->size, &img, NULL), 0);
        assert_int_equal(pe_authenticode_ranges(&img, &ranges, &n, NULL), 0);
        assert_int_equal(n, 3 + 4 + 1);
        for (size_t j = 0; j < n; j++)
                total += ranges[j].size;
        assert_int_equal(total, s->size - 12);
        assert_int_equal(ranges[n - 1].offset, l.soh + 4 * 0x200);
        pe_image_done(&img);
}

/* Sections with a gap between them: EDK2 starts the trailing data at SizeOfHeaders + the raw sizes,
 * not at the end of the last section, so part of the last section is hashed twice. That is what
 * firmware measures, so that is what we compute. */
static void test_section_gap(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);
        _cleanup_free_ struct byte_range *ranges = NULL;
        struct pe_image img = {};
        size_t n;

        store_le32(section_header(p, &l, 4) + SEC_RAWPTR, 0xcf0);
        assert_int_equal(pe_parse(p, s->size, &img, NULL), 0);
        assert_int_equal(pe_authenticode_ranges(&img, &ranges, &n, NULL), 0);
        assert_int_equal(n, 3 + 5 + 1);
        assert_int_equal(ranges[n - 2].offset, 0xcf0);
        assert_int_equal(ranges[n - 2].size, 0x200);
        assert_int_equal(ranges[n - 1].offset, 0xe00);
        assert_int_equal(ranges[n - 1].size, s->size - 0xe00);
        pe_image_done(&img);
}

/* A minimal PE32 image built here, to prove the PE32 offsets (CheckSum at +64, data directories
 * at +96) independently of the PE32+ test files. */
static void test_pe32(void **state) {
        const size_t opt = 0x40 + 4 + 20, optsize = 96 + 16 * 8, table = opt + optsize, soh = 0x200,
                     size = soh + 0x200 + 5;
        _cleanup_free_ uint8_t *p = calloc(1, size);
        _cleanup_free_ uint8_t *cat = malloc(size);
        struct pe_image img = {};
        struct cnos_err err = {};
        uint8_t md[48];
        char hex[97], ref[97];

        assert_non_null(p);
        assert_non_null(cat);
        for (size_t i = 0; i < size; i++)
                p[i] = (uint8_t) (i * 7 + 3);
        p[0] = 'M', p[1] = 'Z';
        store_le32(p + E_LFANEW, 0x40);
        memcpy(p + 0x40, "PE\0\0", 4);
        store_le16(p + 0x44, 0x014c);
        store_le16(p + 0x44 + COFF_NSECTIONS, 1);
        store_le16(p + 0x44 + COFF_OPTSIZE, (uint16_t) optsize);
        store_le16(p + opt, 0x10b);
        store_le32(p + opt + OPT_SOH, (uint32_t) soh);
        store_le32(p + opt + OPT32_NDIRS, 16);
        store_le32(p + opt + OPT32_DIRS + 32, 0); /* no certificate table */
        store_le32(p + opt + OPT32_DIRS + 36, 0);
        memcpy(p + table, ".text\0\0\0", 8);
        store_le32(p + table + SEC_RAWSIZE, 0x200);
        store_le32(p + table + SEC_RAWPTR, (uint32_t) soh);
        memset(p + table + 40, 0, soh - table - 40);

        assert_int_equal(pe_parse(p, size, &img, &err), 0);
        assert_false(img.pe32plus);
        assert_int_equal(img.machine, 0x014c);
        assert_int_equal(img.checksum_offset, opt + 64);
        assert_int_equal(img.certdir_offset, opt + 96 + 32);
        pe_image_done(&img);

        /* [0, CheckSum) [CheckSum+4, CertDir) [CertDir+8, end of file) */
        memcpy(cat, p, opt + 64);
        memcpy(cat + opt + 64, p + opt + 68, 96 + 32 - 68);
        memcpy(cat + opt + 64 + 60, p + opt + 136, size - opt - 136);
        assert_int_equal(cnos_hash_buffer(CNOS_HASH_SHA384, cat, size - 12, md), 0);
        hex_encode(md, sizeof(md), ref);
        digest_hex(p, size, CNOS_HASH_SHA384, hex);
        assert_string_equal(hex, ref);

        /* PE32 with too small an optional header for its 16 directories */
        store_le32(p + opt + OPT32_NDIRS, 17);
        expect_fail(p, size, "SizeOfOptionalHeader 224 at offset 0x54 is too small for 17 data directories");
}

/* --- negative ------------------------------------------------------------------------------ */

/* Every cut point of test.pecoff, and many of HelloWorld.efi, copied into a buffer of exactly that
 * size so a read past the cut is caught by ASan/valgrind. Each cut before the end of the last
 * section fails with the message for the structure it cuts through. */
static void truncate_sample(const struct sample *s, size_t stride_after_headers) {
        struct layout l = layout_of(s->data);
        size_t cut = 0;

        assert_true(l.end_of_sections <= s->size);
        while (cut <= s->size) {
                _cleanup_free_ uint8_t *p = dup_bytes(s->data, cut, cut);
                const char *needle;

                if (cut < 0x40)
                        needle = "truncated DOS header at offset 0";
                else if (cut < l.pe + 4)
                        needle = "e_lfanew 0x80 at offset 0x3c points outside the file";
                else if (cut < l.opt)
                        needle = "truncated COFF header at offset 0x84";
                else if (cut < l.table)
                        needle = "truncated optional header at offset 0x98";
                else if (cut < l.table + 40 * l.nsec)
                        needle = "section table at offset 0x188";
                else if (cut < l.soh)
                        needle = "SizeOfHeaders 0x400 at offset 0xd4 exceeds the file size";
                else if (cut < l.end_of_sections)
                        needle = "lies outside the file";
                else
                        needle = NULL;

                if (needle)
                        expect_fail(p, cut, needle);
                else {
                        struct pe_image img = {};

                        assert_int_equal(pe_parse(p, cut, &img, NULL), 0);
                        pe_image_done(&img);
                }
                cut += cut < l.soh + 0x800 ? 1 : stride_after_headers;
        }
}

static void test_truncated(void **state) {
        truncate_sample(PECOFF, 1);
        truncate_sample(HELLO, 61);
        expect_fail(NULL, 0, "truncated DOS header at offset 0: file has 0 bytes");
}

static void test_bad_signatures(void **state) {
        const struct sample *s = PECOFF;
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        p[0] = 'Z';
        expect_fail(p, s->size, "no MZ signature at offset 0");

        memcpy(p, s->data, s->size);
        p[0x81] = 'X';
        expect_fail(p, s->size, "no PE\\0\\0 signature at offset 0x80 (e_lfanew)");

        memcpy(p, s->data, s->size);
        p[0x83] = 1;
        expect_fail(p, s->size, "no PE\\0\\0 signature at offset 0x80");
}

static void test_bad_lfanew(void **state) {
        const struct sample *s = PECOFF;
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(p + E_LFANEW, (uint32_t) s->size);
        expect_fail(p, s->size, "e_lfanew 0xef1 at offset 0x3c points outside the file (size 0xef1)");
        store_le32(p + E_LFANEW, (uint32_t) s->size - 3);
        expect_fail(p, s->size, "e_lfanew 0xeee at offset 0x3c points outside the file");
        store_le32(p + E_LFANEW, 0xffffffff);
        expect_fail(p, s->size, "e_lfanew 0xffffffff at offset 0x3c points outside the file");
        /* PE signature at the very end: the COFF header is cut off */
        store_le32(p + E_LFANEW, (uint32_t) s->size - 4);
        memcpy(p + s->size - 4, "PE\0\0", 4);
        expect_fail(p, s->size, "truncated COFF header at offset 0xef1: need 20 bytes, 0 left");
}

static void test_number_of_sections(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le16(p + l.coff + COFF_NSECTIONS, 0xffff);
        expect_fail(p, s->size, "NumberOfSections 65535 at offset 0x86 exceeds the limit of 96");
        store_le16(p + l.coff + COFF_NSECTIONS, PE_MAX_SECTIONS + 1);
        expect_fail(p, s->size, "NumberOfSections 97 at offset 0x86 exceeds the limit of 96");
        store_le16(p + l.coff + COFF_NSECTIONS, 0);
        expect_fail(p, s->size, "NumberOfSections is 0 at offset 0x86");
        /* 96 entries are allowed, but run past the end of this file */
        store_le16(p + l.coff + COFF_NSECTIONS, PE_MAX_SECTIONS);
        expect_fail(p, s->size,
                    "section table at offset 0x188 (96 entries, 0xf00 bytes) extends past the end of the file (size 0xef1)");
        /* 5 entries fit in the file but not before SizeOfHeaders once that shrinks */
        store_le16(p + l.coff + COFF_NSECTIONS, 5);
        store_le32(p + l.opt + OPT_SOH, 0x200);
        expect_fail(p, s->size, "section table at offset 0x188..0x250 extends beyond SizeOfHeaders 0x200 (at offset 0xd4)");
}

static void test_optional_header(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le16(p + l.opt, 0x30b);
        expect_fail(p, s->size, "unknown optional header Magic 0x030b at offset 0x98");

        memcpy(p, s->data, s->size);
        store_le32(p + l.ndirs, 17);
        expect_fail(p, s->size,
                    "SizeOfOptionalHeader 240 at offset 0x94 is too small for 17 data directories (NumberOfRvaAndSizes at offset 0x104)");
        store_le32(p + l.ndirs, 0xffffffff);
        expect_fail(p, s->size, "is too small for 4294967295 data directories");

        memcpy(p, s->data, s->size);
        store_le16(p + l.coff + COFF_OPTSIZE, 111);
        expect_fail(p, s->size, "SizeOfOptionalHeader 111 at offset 0x94 is too small for a PE32+ optional header (112 bytes)");
        store_le16(p + l.coff + COFF_OPTSIZE, 1);
        expect_fail(p, s->size, "SizeOfOptionalHeader 1 at offset 0x94 is too small for the Magic field");
        store_le16(p + l.coff + COFF_OPTSIZE, 0xffff);
        expect_fail(p, s->size, "truncated optional header at offset 0x98: SizeOfOptionalHeader is 65535, 3673 bytes left");

        memcpy(p, s->data, s->size);
        store_le32(p + l.opt + OPT_SOH, 0x10000);
        expect_fail(p, s->size, "SizeOfHeaders 0x10000 at offset 0xd4 exceeds the file size 0xef1");
}

static void test_section_outside_file(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(section_header(p, &l, 4) + SEC_RAWPTR, (uint32_t) s->size);
        expect_fail(p, s->size, "section 4 (.dynsym), header at offset 0x228: raw data 0xef1..0x10f1 lies outside the file (size 0xef1)");

        store_le32(section_header(p, &l, 4) + SEC_RAWPTR, 0xfffff000);
        expect_fail(p, s->size, "section 4 (.dynsym), header at offset 0x228: raw data 0xfffff000..0xfffff200 lies outside the file");

        /* one byte too long */
        memcpy(p, s->data, s->size);
        store_le32(section_header(p, &l, 4) + SEC_RAWSIZE, (uint32_t) (s->size - 0xc00 + 1));
        expect_fail(p, s->size, "section 4 (.dynsym), header at offset 0x228: raw data 0xc00..0xef2 lies outside the file");
        /* exactly to the end is fine */
        store_le32(section_header(p, &l, 4) + SEC_RAWSIZE, (uint32_t) (s->size - 0xc00));
        {
                struct pe_image img = {};

                assert_int_equal(pe_parse(p, s->size, &img, NULL), 0);
                pe_image_done(&img);
        }
}

static void test_section_overflow(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(section_header(p, &l, 0) + SEC_RAWSIZE, 0xfffffe00);
        expect_fail(p, s->size,
                    "section 0 (.text), header at offset 0x188: PointerToRawData 0x400 + SizeOfRawData 0xfffffe00 overflows");
        store_le32(section_header(p, &l, 0) + SEC_RAWSIZE, 0xffffffff);
        store_le32(section_header(p, &l, 0) + SEC_RAWPTR, 0xffffffff);
        expect_fail(p, s->size, "PointerToRawData 0xffffffff + SizeOfRawData 0xffffffff overflows");
}

static void test_sections_overlap(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(section_header(p, &l, 1) + SEC_RAWPTR, 0x500);
        expect_fail(p, s->size, "section 1 (.reloc) raw data 0x500..0x700 overlaps section 0 (.text) at 0x400..0x600");

        /* same offset; the later table entry is reported, as the sort is stable */
        store_le32(section_header(p, &l, 1) + SEC_RAWPTR, 0x400);
        expect_fail(p, s->size, "section 1 (.reloc) raw data 0x400..0x600 overlaps section 0 (.text) at 0x400..0x600");

        /* a section contained in another, out of table order */
        memcpy(p, s->data, s->size);
        store_le32(section_header(p, &l, 0) + SEC_RAWPTR, 0xa10);
        store_le32(section_header(p, &l, 0) + SEC_RAWSIZE, 0x10);
        expect_fail(p, s->size, "section 0 (.text) raw data 0xa10..0xa20 overlaps section 3 (.dynamic) at 0xa00..0xc00");

        /* the sections of the real file are adjacent; one byte more overlaps */
        memcpy(p, s->data, s->size);
        store_le32(section_header(p, &l, 1) + SEC_RAWSIZE, 0x201);
        expect_fail(p, s->size, "section 2 (.data) raw data 0x800..0xa00 overlaps section 1 (.reloc) at 0x600..0x801");
}

static void test_section_overlaps_headers(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(section_header(p, &l, 0) + SEC_RAWPTR, 0x3f8);
        expect_fail(p, s->size,
                    "section 0 (.text), header at offset 0x188: raw data at 0x3f8 overlaps the headers (SizeOfHeaders 0x400)");
        store_le32(section_header(p, &l, 0) + SEC_RAWPTR, 0);
        expect_fail(p, s->size, "raw data at 0x0 overlaps the headers");

        /* unprintable names are shown as '?' so the message stays one line */
        memcpy(section_header(p, &l, 0), "a\nb\x01\xff", 5);
        expect_fail(p, s->size, "section 0 (a?b?" "?), header at offset 0x188");
}

static void test_cert_table(void **state) {
        const struct sample *s = PECOFF;
        struct layout l = layout_of(s->data);
        _cleanup_free_ uint8_t *p = dup_bytes(s->data, s->size, s->size);

        store_le32(p + l.certdir, (uint32_t) s->size - 8);
        store_le32(p + l.certdir + 4, 16);
        expect_fail(p, s->size,
                    "certificate table 0xee9..0xef9 (directory entry at offset 0x128) lies outside the file (size 0xef1)");

        store_le32(p + l.certdir, (uint32_t) s->size);
        store_le32(p + l.certdir + 4, 8);
        expect_fail(p, s->size, "certificate table 0xef1..0xef9 (directory entry at offset 0x128) lies outside the file");

        store_le32(p + l.certdir, 0xfffffff8);
        store_le32(p + l.certdir + 4, 0x10);
        expect_fail(p, s->size, "certificate table (directory entry at offset 0x128): offset 0xfffffff8 + size 0x10 overflows");

        /* An RVA mistaken for a file offset lands inside a section. */
        store_le32(p + l.certdir, 0x7f0);
        store_le32(p + l.certdir + 4, 0x20);
        expect_fail(p, s->size,
                    "certificate table 0x7f0..0x810 (directory entry at offset 0x128) overlaps section 1 (.reloc) at 0x600..0x800");

        store_le32(p + l.certdir, 0x100);
        store_le32(p + l.certdir + 4, 0x20);
        expect_fail(p, s->size, "certificate table 0x100..0x120 (directory entry at offset 0x128) overlaps the headers (SizeOfHeaders 0x400)");

        /* In the trailing data, the hash stops CertSize bytes before the end, as EDK2's does. */
        store_le32(p + l.certdir, 0xe00);
        store_le32(p + l.certdir + 4, (uint32_t) s->size - 0xe00);
        {
                _cleanup_free_ struct byte_range *ranges = NULL;
                struct pe_image img = {};
                size_t n;

                assert_int_equal(pe_parse(p, s->size, &img, NULL), 0);
                assert_int_equal(pe_authenticode_ranges(&img, &ranges, &n, NULL), 0);
                assert_int_equal(n, 3 + 5);
                assert_int_equal(ranges[n - 1].offset + ranges[n - 1].size, 0xe00);
                pe_image_done(&img);
        }
}

static void test_api_misuse(void **state) {
        const struct sample *s = PECOFF;
        _cleanup_free_ struct byte_range *ranges = NULL;
        struct pe_image img = {}, bad;
        struct cnos_err err = {};
        uint8_t md[CNOS_HASH_MAX_SIZE];
        size_t n;

        assert_int_equal(pe_parse(s->data, s->size, NULL, NULL), -EINVAL);
        assert_int_equal(pe_parse(s->data, s->size, &img, NULL), 0);

        assert_int_equal(pe_authenticode(&img, (enum cnos_hash) 42, md, &err), -EINVAL);
        assert_string_equal(err.msg, "unsupported hash algorithm 42");

        /* A hand-made image that does not fit its buffer is refused, not read out of bounds. */
        bad = img;
        bad.size = 0x300;
        cnos_err_clear(&err);
        assert_int_equal(pe_authenticode_ranges(&bad, &ranges, &n, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "inconsistent PE image"));
        bad = img;
        bad.n_sections = PE_MAX_SECTIONS + 1;
        assert_int_equal(pe_authenticode(&bad, CNOS_HASH_SHA256, md, NULL), -EINVAL);

        pe_image_done(&img);
        pe_image_done(&img);
        pe_image_done(NULL);
        assert_null(pe_find_section(NULL, ".text"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_expected_digests),
                cmocka_unit_test(test_section_table),
                cmocka_unit_test(test_padded8),
                cmocka_unit_test(test_ranges),
                cmocka_unit_test(test_excluded_fields),
                cmocka_unit_test(test_signed_copy),
                cmocka_unit_test(test_no_certdir),
                cmocka_unit_test(test_empty_section),
                cmocka_unit_test(test_section_gap),
                cmocka_unit_test(test_pe32),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_bad_signatures),
                cmocka_unit_test(test_bad_lfanew),
                cmocka_unit_test(test_number_of_sections),
                cmocka_unit_test(test_optional_header),
                cmocka_unit_test(test_section_outside_file),
                cmocka_unit_test(test_section_overflow),
                cmocka_unit_test(test_sections_overlap),
                cmocka_unit_test(test_section_overlaps_headers),
                cmocka_unit_test(test_cert_table),
                cmocka_unit_test(test_api_misuse),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
