/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PE/COFF parsing and the Authenticode image digest, as EDK2's DxeTpm2MeasureBootLib/Tcg2Dxe
 * (MeasurePeImageAndExtend) computes it for PCR 4.
 *
 * Every field is read through cursor_at() on the whole file, which bounds-checks a block before
 * load_le*() reads from it. PE file offsets are 32-bit, so "offset + size" of a section or the
 * certificate table is checked for 32-bit overflow even though size_t could hold the sum: a value
 * that wraps in the format's own arithmetic is malformed whatever our word size.
 *
 * One EDK2 quirk is deliberately not reproduced: for Machine == IA64 with a PE32 Magic, EDK2
 * uses PE32+ offsets (for old ELILO builds). Such images are rejected here as malformed instead,
 * because the optional header they carry does not have the layout EDK2 then reads. */

#include <inttypes.h>
#include <stdlib.h>

#include "cursor.h"
#include "pe.h"

/* Field offsets and sizes from the PE/COFF specification. */
#define DOS_HEADER_SIZE 0x40
#define DOS_E_LFANEW 0x3c
#define PE_SIGNATURE_SIZE 4
#define COFF_HEADER_SIZE 20
#define COFF_MACHINE 0
#define COFF_NUMBER_OF_SECTIONS 2
#define COFF_SIZE_OF_OPTIONAL_HEADER 16
#define OPT_MAGIC_PE32 0x10b
#define OPT_MAGIC_PE32PLUS 0x20b
#define OPT_SIZE_OF_IMAGE 56
#define OPT_SIZE_OF_HEADERS 60
#define OPT_CHECKSUM 64
#define OPT32_NUMBER_OF_RVA_AND_SIZES 92
#define OPT32_DATA_DIRECTORY 96
#define OPT64_NUMBER_OF_RVA_AND_SIZES 108
#define OPT64_DATA_DIRECTORY 112
#define DATA_DIRECTORY_SIZE 8
#define DIRECTORY_ENTRY_SECURITY 4
#define SECTION_HEADER_SIZE 40
#define SECTION_VIRTUAL_SIZE 8
#define SECTION_VIRTUAL_ADDRESS 12
#define SECTION_SIZE_OF_RAW_DATA 16
#define SECTION_POINTER_TO_RAW_DATA 20

/* Section names come from the file: show them with anything unprintable replaced, so an error
 * message stays one line of text. */
static const char *printable_name(const char *name, char buf[static 9]) {
        size_t i;

        for (i = 0; i < 8 && name[i]; i++)
                buf[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
        buf[i] = 0;
        return buf;
}

/* Indices of the sections that carry raw data, ordered by PointerToRawData (stable, as EDK2's
 * insertion sort is, so sections at equal offsets keep table order). Returns the count. */
static size_t sort_sections(const struct pe_section *s, size_t n, size_t order[static PE_MAX_SECTIONS]) {
        size_t k = 0;

        for (size_t i = 0; i < n && i < PE_MAX_SECTIONS; i++) {
                size_t pos;

                if (s[i].raw_size == 0)
                        continue;
                for (pos = k; pos > 0 && s[order[pos - 1]].raw_offset > s[i].raw_offset; pos--)
                        order[pos] = order[pos - 1];
                order[pos] = i;
                k++;
        }
        return k;
}

static int parse_sections(
                const struct cursor *file,
                size_t table_off,
                size_t n,
                uint32_t size_of_headers,
                struct pe_section *sections,
                struct cnos_err *e) {

        size_t order[PE_MAX_SECTIONS], k;
        char n1[9], n2[9];

        for (size_t i = 0; i < n; i++) {
                struct pe_section *s = sections + i;
                size_t off = table_off + i * SECTION_HEADER_SIZE;
                const uint8_t *p;
                uint32_t end;

                if (cursor_at(file, off, SECTION_HEADER_SIZE, &p) < 0)
                        return cnos_err_set(e, -EBADMSG, "truncated section header %zu at offset 0x%zx", i, off);

                memcpy(s->name, p, 8);
                s->name[8] = 0;
                s->virtual_size = load_le32(p + SECTION_VIRTUAL_SIZE);
                s->virtual_address = load_le32(p + SECTION_VIRTUAL_ADDRESS);
                s->raw_size = load_le32(p + SECTION_SIZE_OF_RAW_DATA);
                s->raw_offset = load_le32(p + SECTION_POINTER_TO_RAW_DATA);

                /* Sections without raw data (.bss) are not hashed, so where they point is moot. */
                if (s->raw_size == 0)
                        continue;

                if (__builtin_add_overflow(s->raw_offset, s->raw_size, &end))
                        return cnos_err_set(e, -EBADMSG,
                                            "section %zu (%s), header at offset 0x%zx: PointerToRawData 0x%" PRIx32
                                            " + SizeOfRawData 0x%" PRIx32 " overflows",
                                            i, printable_name(s->name, n1), off, s->raw_offset, s->raw_size);
                if (end > file->size)
                        return cnos_err_set(e, -EBADMSG,
                                            "section %zu (%s), header at offset 0x%zx: raw data 0x%" PRIx32 "..0x%" PRIx32
                                            " lies outside the file (size 0x%zx)",
                                            i, printable_name(s->name, n1), off, s->raw_offset, end, file->size);
                if (s->raw_offset < size_of_headers)
                        return cnos_err_set(e, -EBADMSG,
                                            "section %zu (%s), header at offset 0x%zx: raw data at 0x%" PRIx32
                                            " overlaps the headers (SizeOfHeaders 0x%" PRIx32 ")",
                                            i, printable_name(s->name, n1), off, s->raw_offset, size_of_headers);
        }

        /* Authenticode hashes each raw byte once, in file order; overlapping raw data would be
         * hashed twice, which no linker produces and which only serves to confuse. */
        k = sort_sections(sections, n, order);
        for (size_t j = 1; j < k; j++) {
                const struct pe_section *a = sections + order[j - 1], *b = sections + order[j];

                if (b->raw_offset < a->raw_offset + a->raw_size)
                        return cnos_err_set(e, -EBADMSG,
                                            "section %zu (%s) raw data 0x%" PRIx32 "..0x%" PRIx32
                                            " overlaps section %zu (%s) at 0x%" PRIx32 "..0x%" PRIx32,
                                            order[j], printable_name(b->name, n1), b->raw_offset,
                                            b->raw_offset + b->raw_size, order[j - 1], printable_name(a->name, n2),
                                            a->raw_offset, a->raw_offset + a->raw_size);
        }
        return 0;
}

static int check_cert_table(const struct pe_image *img, struct cnos_err *e) {
        uint32_t end;
        char n1[9];

        if (img->cert_size == 0)
                return 0;

        /* The Certificate Table entry holds a file offset, not an RVA. */
        if (__builtin_add_overflow(img->cert_offset, img->cert_size, &end))
                return cnos_err_set(e, -EBADMSG,
                                    "certificate table (directory entry at offset 0x%zx): offset 0x%" PRIx32
                                    " + size 0x%" PRIx32 " overflows",
                                    img->certdir_offset, img->cert_offset, img->cert_size);
        if (end > img->size)
                return cnos_err_set(e, -EBADMSG,
                                    "certificate table 0x%" PRIx32 "..0x%" PRIx32
                                    " (directory entry at offset 0x%zx) lies outside the file (size 0x%zx)",
                                    img->cert_offset, end, img->certdir_offset, img->size);
        if (img->cert_offset < img->size_of_headers)
                return cnos_err_set(e, -EBADMSG,
                                    "certificate table 0x%" PRIx32 "..0x%" PRIx32
                                    " (directory entry at offset 0x%zx) overlaps the headers (SizeOfHeaders 0x%" PRIx32 ")",
                                    img->cert_offset, end, img->certdir_offset, img->size_of_headers);
        for (size_t i = 0; i < img->n_sections; i++) {
                const struct pe_section *s = img->sections + i;

                if (s->raw_size == 0)
                        continue;
                if (img->cert_offset < s->raw_offset + s->raw_size && s->raw_offset < end)
                        return cnos_err_set(e, -EBADMSG,
                                            "certificate table 0x%" PRIx32 "..0x%" PRIx32
                                            " (directory entry at offset 0x%zx) overlaps section %zu (%s) at 0x%" PRIx32
                                            "..0x%" PRIx32,
                                            img->cert_offset, end, img->certdir_offset, i, printable_name(s->name, n1),
                                            s->raw_offset, s->raw_offset + s->raw_size);
        }
        return 0;
}

int pe_parse(const void *data, size_t size, struct pe_image *ret, struct cnos_err *e) {
        _cleanup_free_ struct pe_section *sections = NULL;
        struct cursor file = cursor_init(data, size);
        const uint8_t *dos, *sig, *coff, *opt;
        size_t pe_off, coff_off, opt_off, table_off, table_size, dir_off, need;
        uint16_t n_sections, opt_size, magic;
        uint32_t lfanew, n_dirs;
        struct pe_image img = {
                .data = data,
                .size = size,
        };
        int r;

        if (!ret)
                return -EINVAL;

        if (cursor_at(&file, 0, DOS_HEADER_SIZE, &dos) < 0)
                return cnos_err_set(e, -EBADMSG, "truncated DOS header at offset 0: file has %zu bytes, need %d",
                                    size, DOS_HEADER_SIZE);
        if (dos[0] != 'M' || dos[1] != 'Z')
                return cnos_err_set(e, -EBADMSG, "no MZ signature at offset 0");

        lfanew = load_le32(dos + DOS_E_LFANEW);
        pe_off = lfanew;
        if (cursor_at(&file, pe_off, PE_SIGNATURE_SIZE, &sig) < 0)
                return cnos_err_set(e, -EBADMSG,
                                    "e_lfanew 0x%" PRIx32 " at offset 0x%x points outside the file (size 0x%zx)",
                                    lfanew, DOS_E_LFANEW, size);
        if (memcmp(sig, "PE\0\0", PE_SIGNATURE_SIZE) != 0)
                return cnos_err_set(e, -EBADMSG, "no PE\\0\\0 signature at offset 0x%zx (e_lfanew)", pe_off);

        coff_off = pe_off + PE_SIGNATURE_SIZE; /* cannot overflow: pe_off + 4 <= size */
        if (cursor_at(&file, coff_off, COFF_HEADER_SIZE, &coff) < 0)
                return cnos_err_set(e, -EBADMSG, "truncated COFF header at offset 0x%zx: need %d bytes, %zu left",
                                    coff_off, COFF_HEADER_SIZE, size - coff_off);
        img.machine = load_le16(coff + COFF_MACHINE);
        n_sections = load_le16(coff + COFF_NUMBER_OF_SECTIONS);
        opt_size = load_le16(coff + COFF_SIZE_OF_OPTIONAL_HEADER);
        if (n_sections == 0)
                return cnos_err_set(e, -EBADMSG, "NumberOfSections is 0 at offset 0x%zx",
                                    coff_off + COFF_NUMBER_OF_SECTIONS);
        if (n_sections > PE_MAX_SECTIONS)
                return cnos_err_set(e, -EBADMSG, "NumberOfSections %u at offset 0x%zx exceeds the limit of %d",
                                    n_sections, coff_off + COFF_NUMBER_OF_SECTIONS, PE_MAX_SECTIONS);

        opt_off = coff_off + COFF_HEADER_SIZE;
        if (cursor_at(&file, opt_off, opt_size, &opt) < 0)
                return cnos_err_set(e, -EBADMSG,
                                    "truncated optional header at offset 0x%zx: SizeOfOptionalHeader is %u, %zu bytes left",
                                    opt_off, opt_size, size - opt_off);
        if (opt_size < 2)
                return cnos_err_set(e, -EBADMSG, "SizeOfOptionalHeader %u at offset 0x%zx is too small for the Magic field",
                                    opt_size, coff_off + COFF_SIZE_OF_OPTIONAL_HEADER);

        magic = load_le16(opt);
        if (magic == OPT_MAGIC_PE32) {
                img.pe32plus = false;
                dir_off = OPT32_DATA_DIRECTORY;
        } else if (magic == OPT_MAGIC_PE32PLUS) {
                img.pe32plus = true;
                dir_off = OPT64_DATA_DIRECTORY;
        } else
                return cnos_err_set(e, -EBADMSG, "unknown optional header Magic 0x%04x at offset 0x%zx", magic, opt_off);

        if (opt_size < dir_off)
                return cnos_err_set(e, -EBADMSG,
                                    "SizeOfOptionalHeader %u at offset 0x%zx is too small for a %s optional header (%zu bytes)",
                                    opt_size, coff_off + COFF_SIZE_OF_OPTIONAL_HEADER, img.pe32plus ? "PE32+" : "PE32",
                                    dir_off);

        n_dirs = load_le32(opt + (img.pe32plus ? OPT64_NUMBER_OF_RVA_AND_SIZES : OPT32_NUMBER_OF_RVA_AND_SIZES));
        if (size_mul(n_dirs, DATA_DIRECTORY_SIZE, &need) < 0 || size_add(need, dir_off, &need) < 0 || opt_size < need)
                return cnos_err_set(e, -EBADMSG,
                                    "SizeOfOptionalHeader %u at offset 0x%zx is too small for %" PRIu32
                                    " data directories (NumberOfRvaAndSizes at offset 0x%zx)",
                                    opt_size, coff_off + COFF_SIZE_OF_OPTIONAL_HEADER, n_dirs,
                                    opt_off + (img.pe32plus ? OPT64_NUMBER_OF_RVA_AND_SIZES : OPT32_NUMBER_OF_RVA_AND_SIZES));

        img.size_of_image = load_le32(opt + OPT_SIZE_OF_IMAGE);
        img.size_of_headers = load_le32(opt + OPT_SIZE_OF_HEADERS);
        img.checksum_offset = opt_off + OPT_CHECKSUM;
        if (n_dirs > DIRECTORY_ENTRY_SECURITY) {
                size_t entry = dir_off + DIRECTORY_ENTRY_SECURITY * DATA_DIRECTORY_SIZE;

                img.certdir_offset = opt_off + entry;
                img.cert_offset = load_le32(opt + entry);
                img.cert_size = load_le32(opt + entry + 4);
                if (img.cert_size == 0)
                        img.cert_offset = 0;
        }

        /* All of these stay far below SIZE_MAX: each term is bounded by the checked file size or a
         * 16-bit field. */
        table_off = opt_off + opt_size;
        table_size = (size_t) n_sections * SECTION_HEADER_SIZE;
        if (table_off > size || table_size > size - table_off)
                return cnos_err_set(e, -EBADMSG,
                                    "section table at offset 0x%zx (%u entries, 0x%zx bytes) extends past the end of the file (size 0x%zx)",
                                    table_off, n_sections, table_size, size);
        if (img.size_of_headers > size)
                return cnos_err_set(e, -EBADMSG,
                                    "SizeOfHeaders 0x%" PRIx32 " at offset 0x%zx exceeds the file size 0x%zx",
                                    img.size_of_headers, opt_off + OPT_SIZE_OF_HEADERS, size);
        if (table_off + table_size > img.size_of_headers)
                return cnos_err_set(e, -EBADMSG,
                                    "section table at offset 0x%zx..0x%zx extends beyond SizeOfHeaders 0x%" PRIx32
                                    " (at offset 0x%zx)",
                                    table_off, table_off + table_size, img.size_of_headers, opt_off + OPT_SIZE_OF_HEADERS);

        sections = calloc(n_sections, sizeof(struct pe_section));
        if (!sections)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = parse_sections(&file, table_off, n_sections, img.size_of_headers, sections, e);
        if (r < 0)
                return r;

        img.n_sections = n_sections;
        img.sections = sections;
        r = check_cert_table(&img, e);
        if (r < 0)
                return r;

        img.sections = TAKE_PTR(sections);
        *ret = img;
        return 0;
}

void pe_image_done(struct pe_image *img) {
        if (!img)
                return;
        free(img->sections);
        *img = (struct pe_image) {};
}

const struct pe_section *pe_find_section(const struct pe_image *img, const char *name) {
        if (!img || !name)
                return NULL;
        for (size_t i = 0; i < img->n_sections; i++)
                if (strcmp(img->sections[i].name, name) == 0)
                        return img->sections + i;
        return NULL;
}

/* Appends [from, to) unless it is empty. The image came from pe_parse(), so these checks only
 * guard against a pe_image that was built or modified by hand. */
static int add_range(const struct pe_image *img, struct byte_range *r, size_t *n, size_t from, size_t to, struct cnos_err *e) {
        if (from > to || to > img->size)
                return cnos_err_set(e, -EINVAL, "inconsistent PE image: range 0x%zx..0x%zx outside the file (size 0x%zx)",
                                    from, to, img->size);
        if (from < to)
                r[(*n)++] = (struct byte_range) { .offset = from, .size = to - from };
        return 0;
}

int pe_authenticode_ranges(const struct pe_image *img, struct byte_range **ret, size_t *ret_n, struct cnos_err *e) {
        _cleanup_free_ struct byte_range *r = NULL;
        size_t order[PE_MAX_SECTIONS], n = 0, k, hashed, tail_end;
        int q;

        if (!img || !ret || !ret_n)
                return -EINVAL;
        if (img->n_sections > PE_MAX_SECTIONS || (img->n_sections > 0 && !img->sections))
                return cnos_err_set(e, -EINVAL, "inconsistent PE image: %zu sections", img->n_sections);

        /* Three header pieces, one range a section, one trailing range. */
        r = calloc(img->n_sections + 4, sizeof(struct byte_range));
        if (!r)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        /* The headers, without CheckSum and, if present, the Certificate Table entry. */
        q = add_range(img, r, &n, 0, img->checksum_offset, e);
        if (q >= 0 && img->certdir_offset > 0) {
                q = add_range(img, r, &n, img->checksum_offset + 4, img->certdir_offset, e);
                if (q >= 0)
                        q = add_range(img, r, &n, img->certdir_offset + DATA_DIRECTORY_SIZE, img->size_of_headers, e);
        } else if (q >= 0)
                q = add_range(img, r, &n, img->checksum_offset + 4, img->size_of_headers, e);
        if (q < 0)
                return q;

        hashed = img->size_of_headers;
        k = sort_sections(img->sections, img->n_sections, order);
        for (size_t j = 0; j < k; j++) {
                const struct pe_section *s = img->sections + order[j];

                q = add_range(img, r, &n, s->raw_offset, (size_t) s->raw_offset + s->raw_size, e);
                if (q < 0)
                        return q;
                /* Stays <= size for a parsed image: its sections are disjoint and inside the file. */
                if (size_add(hashed, s->raw_size, &hashed) < 0)
                        return cnos_err_set(e, -EOVERFLOW, "inconsistent PE image: section sizes overflow");
        }

        /* Whatever follows, up to the certificate table, which EDK2 assumes sits at the end of the
         * file: [SumOfBytesHashed, FileSize - CertSize). pe_parse() guarantees
         * headers + sections + certificate table fit in the file without overlap, so EDK2's
         * "FileSize < CertSize + SumOfBytesHashed" failure cannot happen for a parsed image. */
        if (img->size > hashed) {
                if (img->cert_size > img->size - hashed)
                        return cnos_err_set(e, -EBADMSG,
                                            "certificate table size 0x%" PRIx32 " exceeds the 0x%zx bytes after the sections",
                                            img->cert_size, img->size - hashed);
                tail_end = img->size - img->cert_size;
                q = add_range(img, r, &n, hashed, tail_end, e);
                if (q < 0)
                        return q;
        }

        *ret = TAKE_PTR(r);
        *ret_n = n;
        return 0;
}

int pe_authenticode(const struct pe_image *img, enum cnos_hash h, uint8_t *out, struct cnos_err *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ struct byte_range *ranges = NULL;
        const EVP_MD *md = cnos_hash_md(h);
        size_t n;
        int r;

        if (!img || !out)
                return -EINVAL;
        if (!md)
                return cnos_err_set(e, -EINVAL, "unsupported hash algorithm %d", (int) h);

        r = pe_authenticode_ranges(img, &ranges, &n, e);
        if (r < 0)
                return r;

        /* One context, fed straight from the caller's (usually mmap'ed) buffer: no copies. */
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
                return cnos_err_set(e, -EIO, "EVP_DigestInit_ex(%s) failed", cnos_hash_name(h));
        for (size_t i = 0; i < n; i++)
                if (EVP_DigestUpdate(ctx, img->data + ranges[i].offset, ranges[i].size) != 1)
                        return cnos_err_set(e, -EIO, "EVP_DigestUpdate(%s) failed", cnos_hash_name(h));
        if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
                return cnos_err_set(e, -EIO, "EVP_DigestFinal_ex(%s) failed", cnos_hash_name(h));
        return 0;
}
