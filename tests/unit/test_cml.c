/*
 * test_cml.c - replication/cml*.c: CommerceML 2 catalogs, offers and
 * orders read into their collections (tests/fixtures/cml, written after
 * the published schema, in UTF-8 and windows-1251), the export of orders
 * read back to the same records, and each kind of bad input: exit-2
 * errors naming the line, nothing written, or with skip the rest loaded
 * and each skip reported.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../replication/cml.h"
#include "../lib/fixture.h"

#ifndef BS_CML_FIXTURES
#error "BS_CML_FIXTURES names tests/fixtures/cml"
#endif

static char root[128];
static bst_node node;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "cml");
    bst_node_new(&node, root, "head", BS_ROLE_HUB, NULL);
}

static void
teardown(void)
{
    bst_node_free(&node);
    bst_rmtree(root);
    bst_leak_check("test_cml");
}

TestSuite(cml, .init = setup, .fini = teardown, .timeout = 60);

/* Reports collected by the import. */
static char reports[8192];

static void
on_report(void *ctx, const char *coll, const char *id, bs_load_action a,
          const char *reason)
{
    size_t n = strlen(reports);

    (void)ctx;
    snprintf(reports + n, sizeof reports - n, "%s|%s|%s|%s\n", coll,
             id ? id : "-", bs_load_action_name(a), reason ? reason : "-");
}

/* bs_cml_opts.chunk and .batch for the next imports (0: the defaults). */
static size_t chunk;

static bs_err
import_buf(bst_node *t, const char *xml, size_t len, int skip, bs_cml_stats *st,
           bs_errbuf *err)
{
    bs_cml_opts o = {0};

    o.skip = skip;
    o.chunk = chunk;
    o.batch = chunk;
    o.tmpdir = root;
    o.report = on_report;
    reports[0] = '\0';
    return bs_cml_import(&t->core, xml, len, &o, st, err);
}

static bs_err
import_str(const char *xml, int skip, bs_cml_stats *st, bs_errbuf *err)
{
    return import_buf(&node, xml, strlen(xml), skip, st, err);
}

/* Import fixture name into t; must succeed. */
static void
import_fixture(bst_node *t, const char *name, bs_cml_stats *st)
{
    char path[512];
    size_t n;
    uint8_t *p;
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(path, sizeof path, "%s/%s", BS_CML_FIXTURES, name);
    p = bst_read_file(path, &n);
    rv = import_buf(t, (const char *)p, n, 0, st, &err);
    free(p);
    cr_assert_eq(rv, BS_OK, "%s: %s", name, bs_errmsg(&err, rv));
}

static void
expect_record(const char *coll, const char *id, const char *want)
{
    char *got = bst_get(&node, coll, id);

    cr_assert_not_null(got, "%s/%s missing", coll, id);
    cr_expect_str_eq(got, want, "%s/%s", coll, id);
    free(got);
}

/* The import of xml must fail with BS_EINVAL naming `part` and write
 * nothing. */
static void
expect_refused(const char *xml, const char *part)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_err rv;

    bst_fingerprint(&node, before);
    rv = import_str(xml, 0, NULL, &err);
    cr_expect_eq(rv, BS_EINVAL, "want BS_EINVAL, got %s (%s)", bs_strerror(rv),
                 bs_errmsg(&err, rv));
    cr_expect(strstr(bs_errmsg(&err, rv), part) != NULL,
              "message \"%s\" lacks \"%s\"", bs_errmsg(&err, rv), part);
    cr_expect(strchr(bs_errmsg(&err, rv), '\n') == NULL, "one line: %s",
              bs_errmsg(&err, rv));
    bst_fingerprint(&node, after);
    cr_expect_eq(memcmp(before, after, BS_HASH_LEN), 0, "something written");
}

#define HEAD                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                             \
    "<КоммерческаяИнформация ВерсияСхемы=\"2.08\">\n"
#define TAIL "</КоммерческаяИнформация>\n"

/* ---- catalog, offers, orders ---- */

Test(cml, catalog_maps_groups_properties_and_goods)
{
    bs_cml_stats st;

    import_fixture(&node, "import.xml", &st);
    cr_expect_str_eq(st.info.version, "2.08");
    cr_expect_eq(st.records[BS_CML_GROUPS], 4);
    cr_expect_eq(st.records[BS_CML_PRODUCTS], 3);
    expect_record(
        "product_groups", "g-110",
        "{\"id\":\"g-110\",\"name\":\"Чайники\",\"parent\":\"g-100\"}");
    expect_record("product_groups", "g-100",
                  "{\"id\":\"g-100\",\"name\":\"Бытовая техника\"}");
    expect_record("properties", "p-color",
                  "{\"id\":\"p-color\",\"name\":\"Цвет\",\"type\":"
                  "\"Справочник\"}");
    expect_record("property_values", "v-white",
                  "{\"id\":\"v-white\",\"property\":\"p-color\",\"value\":"
                  "\"Белый\"}");
    /* dictionary values resolved, a plain value kept, taxes, requisites,
     * CDATA, entities of XML itself */
    expect_record(
        "products", "bd72d8f9-55bc-11d9-848a-00112f43529a",
        "{\"id\":\"bd72d8f9-55bc-11d9-848a-00112f43529a\","
        "\"attr.ВидНоменклатуры\":\"Товар\",\"barcode\":\"4601234567893\","
        "\"description\":\"Корпус из <стекла>, 2200 Вт\",\"group\":\"g-110\","
        "\"name\":\"Чайник электрический \\\"Заря\\\" 1,7 л\","
        "\"prop.p-color\":\"Белый\",\"prop.p-power\":\"2200\","
        "\"sku\":\"ЧК-1701\",\"tax.НДС\":\"20\",\"unit\":\"шт\"}");
    expect_record("products", "pot-7",
                  "{\"id\":\"pot-7\",\"group\":\"g-200\",\"name\":\"Кастрюля "
                  "3 л\",\"sku\":\"КС-7\"}");
}

Test(cml, unknown_elements_are_skipped_and_counted)
{
    bs_cml_stats st;

    import_fixture(&node, "import.xml", &st);
    cr_expect_eq(st.info.unknown, 1);
    cr_expect_str_eq(st.info.unknown_names, "ЦветУпаковкиНестандартный");
}

Test(cml, offers_map_prices_per_type_and_quantities)
{
    bs_cml_stats st;

    import_fixture(&node, "offers.xml", &st);
    cr_expect_eq(st.records[BS_CML_PRICE_TYPES], 2);
    expect_record("price_types", "pt-retail",
                  "{\"id\":\"pt-retail\",\"currency\":\"RUB\",\"name\":"
                  "\"Розничная\"}");
    /* "1 990,50": grouped digits and a decimal comma */
    expect_record("offers", "bd72d8f9-55bc-11d9-848a-00112f43529a",
                  "{\"id\":\"bd72d8f9-55bc-11d9-848a-00112f43529a\","
                  "\"name\":\"Чайник электрический \\\"Заря\\\" 1,7 л\","
                  "\"price.pt-opt\":1500,\"price.pt-retail\":1990.5,"
                  "\"product\":\"bd72d8f9-55bc-11d9-848a-00112f43529a\","
                  "\"quantity\":12,\"sku\":\"ЧК-1701\"}");
    /* a characteristic: the good is before '#'; stock per warehouse */
    expect_record("offers", "bd72d8fa-55bc-11d9-848a-00112f43529a#c-42",
                  "{\"id\":\"bd72d8fa-55bc-11d9-848a-00112f43529a#c-42\","
                  "\"name\":\"Утюг паровой (синий)\","
                  "\"price.pt-retail\":3490.0,"
                  "\"product\":\"bd72d8fa-55bc-11d9-848a-00112f43529a\","
                  "\"stock.w-main\":4}");
    /* 2.08+: Остатки/Остаток/Количество without a warehouse */
    expect_record("offers", "pot-7",
                  "{\"id\":\"pot-7\",\"name\":\"Кастрюля 3 л\","
                  "\"price.pt-retail\":799,\"product\":\"pot-7\","
                  "\"quantity\":0}");
}

Test(cml, orders_map_documents_lines_and_counterparties)
{
    bs_cml_stats st;
    char *pay;

    import_fixture(&node, "orders.xml", &st);
    cr_expect_eq(st.records[BS_CML_ORDERS], 2);
    cr_expect_eq(st.records[BS_CML_ORDER_LINES], 4);
    cr_expect_eq(st.records[BS_CML_COUNTERPARTY], 2);
    expect_record("orders", "1058",
                  "{\"id\":\"1058\",\"currency\":\"руб\",\"customer\":"
                  "\"23#petrov#ООО Вектор\",\"date\":\"2026-12-01\","
                  "\"number\":\"1058\",\"operation\":\"Заказ товара\","
                  "\"rate\":1,\"role\":\"Продавец\",\"time\":\"08:40:00\","
                  "\"total\":1598}");
    expect_record("order_lines", "1057/3",
                  "{\"id\":\"1057/3\",\"attr.ТипНоменклатуры\":\"Услуга\","
                  "\"line\":3,\"name\":\"Доставка заказа\",\"order\":\"1057\","
                  "\"price\":0.5,\"product\":\"ORDER_DELIVERY\","
                  "\"quantity\":1,\"total\":0.5,\"unit\":\"шт\"}");
    expect_record("counterparties", "23#petrov#ООО Вектор",
                  "{\"id\":\"23#petrov#ООО Вектор\",\"full_name\":"
                  "\"Общество с ограниченной ответственностью \\\"Вектор\\\"\","
                  "\"inn\":\"7812345678\",\"kpp\":\"781201001\",\"name\":"
                  "\"ООО \\\"Вектор\\\"\",\"role\":\"Покупатель\"}");
    /* a payment is not an order */
    pay = bst_get(&node, "orders", "pay-77");
    cr_expect_null(pay);
    free(pay);
}

Test(cml, windows_1251_reads_as_utf8)
{
    static const char *const f[] = {"import", "offers", "orders"};
    uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN];
    uint64_t na, nb;
    char name[64];
    bst_node other;
    char dir[160];

    snprintf(dir, sizeof dir, "%s/other", root);
    bst_node_new(&other, root, "other", BS_ROLE_HUB, NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s.xml", f[i]);
        import_fixture(&node, name, NULL);
        snprintf(name, sizeof name, "%s-1251.xml", f[i]);
        import_fixture(&other, name, NULL);
    }
    bst_digest(&node, a, &na);
    bst_digest(&other, b, &nb);
    cr_expect_eq(na, 24);
    cr_expect_eq(na, nb);
    cr_expect_eq(memcmp(a, b, BS_HASH_LEN), 0);
    bst_node_free(&other);
}

Test(cml, import_twice_changes_nothing)
{
    bs_cml_stats st;

    import_fixture(&node, "import.xml", NULL);
    import_fixture(&node, "import.xml", &st);
    cr_expect_eq(st.load.written, 0);
    cr_expect_eq(st.load.unchanged, 11);
}

Test(cml, exported_orders_import_back_to_the_same_records)
{
    uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN];
    uint64_t na, nb, norders = 0;
    char path[256];
    bs_errbuf err = {{0}};
    bst_node other;
    bs_err rv;

    import_fixture(&node, "orders.xml", NULL);
    snprintf(path, sizeof path, "%s/out.xml", root);
    rv = bs_cml_export_orders(&node.core, path, &norders, &err);
    cr_assert_eq(rv, BS_OK, "export: %s", bs_errmsg(&err, rv));
    cr_expect_eq(norders, 2);
    bst_node_new(&other, root, "other", BS_ROLE_HUB, NULL);
    {
        size_t n;
        uint8_t *p = bst_read_file(path, &n);

        cr_expect(strstr((char *)p, "ВерсияСхемы=\"2.08\"") != NULL);
        cr_expect(strstr((char *)p, "ДатаФормирования=\"") != NULL);
        rv = import_buf(&other, (const char *)p, n, 0, NULL, &err);
        free(p);
        cr_assert_eq(rv, BS_OK, "reimport: %s", bs_errmsg(&err, rv));
    }
    bst_digest(&node, a, &na);
    bst_digest(&other, b, &nb);
    cr_expect_eq(na, 8);
    cr_expect_eq(nb, na);
    cr_expect_eq(memcmp(a, b, BS_HASH_LEN), 0, "records differ");
    bst_node_free(&other);
}

Test(cml, export_of_no_orders_is_an_empty_document)
{
    char path[256];
    uint64_t n = 7;
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(path, sizeof path, "%s/none.xml", root);
    rv = bs_cml_export_orders(&node.core, path, &n, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_expect_eq(n, 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.xml", root);
    rv = bs_cml_export_orders(&node.core, path, &n, &err);
    cr_expect_eq(rv, BS_EIO);
}

/* ---- bad input ---- */

Test(cml, good_without_id_is_refused_naming_line_and_element)
{
    import_fixture(&node, "import.xml", NULL);
    expect_refused(HEAD "<Каталог><Товары>\n"
                        "<Товар><Ид>ok-1</Ид><Наименование>a</Наименование>"
                        "</Товар>\n"
                        "<Товар>\n<Наименование>b</Наименование></Товар>\n"
                        "</Товары></Каталог>\n" TAIL,
                   "line 5: <Товар> has no <Ид>");
    expect_refused(HEAD "<Документ><Ид>9</Ид><ХозОперация>Заказ товара"
                        "</ХозОперация><Товары>\n<Товар><Количество>1"
                        "</Количество></Товар></Товары></Документ>\n" TAIL,
                   "line 4: <Товар> has no <Ид>");
}

Test(cml, skip_loads_the_rest_and_reports_each_skip)
{
    bs_cml_stats st;
    bs_errbuf err = {{0}};
    char *got;
    bs_err rv =
        import_str(HEAD "<Каталог><Товары>\n"
                        "<Товар><Ид>ok-1</Ид></Товар>\n"
                        "<Товар><Артикул>A</Артикул></Товар>\n"
                        "<Товар><Ид>ok-2</Ид></Товар>\n"
                        "</Товары></Каталог>\n"
                        "<Документ><Ид>9</Ид><ХозОперация>Заказ товара"
                        "</ХозОперация><Товары>\n<Товар><Ид>x</Ид></Товар>\n"
                        "<Товар><Количество>1</Количество></Товар></Товары>"
                        "</Документ>\n" TAIL,
                   1, &st, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_expect_eq(st.info.skipped, 2);
    cr_expect_eq(st.load.skipped, 2);
    got = bst_get(&node, "products", "ok-2");
    cr_expect_not_null(got);
    free(got);
    /* the document is left out whole: no order, no line */
    got = bst_get(&node, "order_lines", "9/1");
    cr_expect_null(got);
    free(got);
    cr_expect(strstr(reports, "products|-|skipped|line 5: <Товар> has no "
                              "<Ид>\n") != NULL,
              "%s", reports);
    cr_expect(strstr(reports, "orders|9|skipped|line 10: <Товар> has no "
                              "<Ид>\n") != NULL,
              "%s", reports);
    cr_expect(strstr(reports, "products|ok-1|inserted|-\n") != NULL, "%s",
              reports);
}

Test(cml, entities_and_dtds_are_refused)
{
    /* internal entities (a billion-laughs seed) */
    expect_refused("<?xml version=\"1.0\"?>\n"
                   "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">"
                   "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n"
                   "<КоммерческаяИнформация><Каталог><Товары><Товар>"
                   "<Ид>&b;</Ид></Товар></Товары></Каталог>"
                   "</КоммерческаяИнформация>\n",
                   "DOCTYPE or entity is refused");
    /* an external entity and an external DTD: never fetched */
    expect_refused("<?xml version=\"1.0\"?>\n"
                   "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n"
                   "<КоммерческаяИнформация>&e;</КоммерческаяИнформация>\n",
                   "refused");
    expect_refused("<?xml version=\"1.0\"?>\n"
                   "<!DOCTYPE x SYSTEM \"http://127.0.0.1:9/x.dtd\">\n"
                   "<КоммерческаяИнформация/>\n",
                   "DOCTYPE or entity is refused");
}

Test(cml, absurd_depth_is_refused)
{
    char *xml = malloc(200000), *p = xml;

    p += sprintf(p, HEAD);
    for (int i = 0; i < 10000; i++)
        p += sprintf(p, "<a>");
    for (int i = 0; i < 10000; i++)
        p += sprintf(p, "</a>");
    sprintf(p, TAIL);
    expect_refused(xml, "line 3");
    /* inside an entity: over our limit, under libxml2's */
    p = xml + sprintf(xml, HEAD "<Каталог><Товары><Товар><Ид>x</Ид>\n");
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "<a>");
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "</a>");
    sprintf(p, "</Товар></Товары></Каталог>" TAIL);
    expect_refused(xml, "nested deeper than 64");
    free(xml);
}

Test(cml, invalid_encoding_is_refused_naming_the_line)
{
    /* a byte that is not UTF-8 */
    expect_refused(HEAD "<Каталог><Товары>\n<Товар><Ид>x\xff</Ид></Товар>"
                        "</Товары></Каталог>" TAIL,
                   "line 4:");
    /* 0x98 is no character in windows-1251 */
    expect_refused("<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n"
                   "<\xca\xee\xec\xec\xe5\xf0\xf7\xe5\xf1\xea\xe0\xff"
                   "\xc8\xed\xf4\xee\xf0\xec\xe0\xf6\xe8\xff>\n\n"
                   "<a>\x98</a></\xca\xee\xec\xec\xe5\xf0\xf7\xe5\xf1\xea\xe0"
                   "\xff\xc8\xed\xf4\xee\xf0\xec\xe0\xf6\xe8\xff>\n",
                   "line ");
}

Test(cml, malformed_xml_version_and_root_are_refused)
{
    expect_refused(HEAD "<Каталог><Товары>\n<Товар><Ид>x</Ид></Товары>" TAIL,
                   "line 4:");
    expect_refused("<?xml version=\"1.0\"?>\n"
                   "<КоммерческаяИнформация ВерсияСхемы=\"3.1\"/>\n",
                   "ВерсияСхемы \"3.1\"");
    expect_refused("<?xml version=\"1.0\"?>\n<Catalog/>\n",
                   "line 2: <Catalog> is not a CommerceML document");
    expect_refused("", "");
}

Test(cml, bad_numbers_and_missing_keys_are_refused)
{
    expect_refused(HEAD "<ПакетПредложений><Предложения><Предложение>"
                        "<Ид>x</Ид><Цены>\n<Цена><ИдТипаЦены>r</ИдТипаЦены>"
                        "<ЦенаЗаЕдиницу>12.5.1</ЦенаЗаЕдиницу></Цена></Цены>"
                        "</Предложение></Предложения></ПакетПредложений>" TAIL,
                   "line 4: <ЦенаЗаЕдиницу>: \"12.5.1\" is not a number");
    expect_refused(HEAD "<ПакетПредложений><Предложения><Предложение>"
                        "<Ид>x</Ид><Цены>\n<Цена><ЦенаЗаЕдиницу>1"
                        "</ЦенаЗаЕдиницу></Цена></Цены></Предложение>"
                        "</Предложения></ПакетПредложений>" TAIL,
                   "line 4: <Цена> has no <ИдТипаЦены>");
    expect_refused(HEAD "<Классификатор><Свойства><Свойство><Ид>p</Ид>"
                        "<ВариантыЗначений>\n<Справочник><Значение>v"
                        "</Значение></Справочник></ВариантыЗначений>"
                        "</Свойство></Свойства></Классификатор>" TAIL,
                   "line 4: <Справочник> has no <ИдЗначения>");
}

Test(cml, chunked_load_is_the_same_load)
{
    uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN];
    uint64_t na, nb;
    bs_cml_stats st;
    bst_node other;

    import_fixture(&node, "import.xml", NULL);
    import_fixture(&node, "orders.xml", NULL);
    bst_node_new(&other, root, "other", BS_ROLE_HUB, NULL);
    chunk = 2; /* two records a load, one a transaction */
    import_fixture(&other, "import.xml", &st);
    cr_expect_eq(st.load.records, 11);
    cr_expect_eq(st.load.written, 11);
    import_fixture(&other, "orders.xml", &st);
    cr_expect_eq(st.load.records, 8);
    cr_expect(strstr(reports, "order_lines|1058/1|inserted|-\n") != NULL, "%s",
              reports);
    chunk = 0;
    bst_digest(&node, a, &na);
    bst_digest(&other, b, &nb);
    cr_expect_eq(na, 19);
    cr_expect_eq(nb, na);
    cr_expect_eq(memcmp(a, b, BS_HASH_LEN), 0);
    bst_node_free(&other);
}

Test(cml, older_and_newer_schema_shapes)
{
    bs_cml_stats st;
    bs_errbuf err = {{0}};
    char *got;
    bs_err rv;

    /* 2.03: СвойствоНоменклатуры and ВариантЗначения; 2.10: documents in
     * a Контейнер */
    rv = import_str(
        "<?xml version=\"1.0\"?>\n"
        "<КоммерческаяИнформация ВерсияСхемы=\"2.03\"><Классификатор>"
        "<Свойства><СвойствоНоменклатуры><Ид>p</Ид><Наименование>Вкус"
        "</Наименование><ВариантыЗначений><ВариантЗначения><Ид>v1</Ид>"
        "<Значение>Сладкий</Значение></ВариантЗначения></ВариантыЗначений>"
        "</СвойствоНоменклатуры></Свойства></Классификатор><Каталог>"
        "<Товары><Товар><Ид>g</Ид><ЗначенияСвойств><ЗначенияСвойства>"
        "<Ид>p</Ид><Значение>v1</Значение></ЗначенияСвойства>"
        "</ЗначенияСвойств></Товар></Товары></Каталог>"
        "</КоммерческаяИнформация>\n",
        0, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    expect_record("products", "g", "{\"id\":\"g\",\"prop.p\":\"Сладкий\"}");
    rv = import_str(
        "<?xml version=\"1.0\"?>\n"
        "<КоммерческаяИнформация ВерсияСхемы=\"2.10\"><Контейнер>"
        "<Документ><Ид>k1</Ид><ХозОперация>Заказ товара</ХозОперация>"
        "</Документ></Контейнер></КоммерческаяИнформация>\n",
        0, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    got = bst_get(&node, "orders", "k1");
    cr_expect_not_null(got);
    free(got);
}

Test(cml, numbers_of_1c_become_json_numbers)
{
    bs_errbuf err = {{0}};
    bs_err rv = import_str(
        HEAD "<Документ><Ид>n</Ид><ХозОперация>Заказ товара</ХозОперация>"
             "<Товары>"
             /* fuzz_cml found "0 990,50" written as 0990.50 */
             "<Товар><Ид>a</Ид><ЦенаЗаЕдиницу>0 990,50</ЦенаЗаЕдиницу>"
             "<Количество>007</Количество><Сумма>-0,5</Сумма></Товар>"
             "<Товар><Ид>b</Ид><ЦенаЗаЕдиницу>1 200 300</ЦенаЗаЕдиницу>"
             "<Количество>0.25</Количество><Сумма>0</Сумма></Товар>"
             "</Товары></Документ>" TAIL,
        0, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    expect_record("order_lines", "n/1",
                  "{\"id\":\"n/1\",\"line\":1,\"order\":\"n\",\"price\":"
                  "990.5,\"product\":\"a\",\"quantity\":7,\"total\":-0.5}");
    expect_record("order_lines", "n/2",
                  "{\"id\":\"n/2\",\"line\":2,\"order\":\"n\",\"price\":"
                  "1200300,\"product\":\"b\",\"quantity\":0.25,\"total\":0}");
    expect_refused(HEAD "<Документ><Ид>m</Ид><ХозОперация>Заказ товара"
                        "</ХозОперация><Товары><Товар><Ид>a</Ид>"
                        "<Количество>1  000</Количество></Товар></Товары>"
                        "</Документ>" TAIL,
                   "\"1  000\" is not a number");
    expect_refused(HEAD "<Документ><Ид>m</Ид><ХозОперация>Заказ товара"
                        "</ХозОперация><Сумма>1234567890123456789012345678901"
                        "2</Сумма></Документ>" TAIL,
                   "is not a number (at most 31 characters)");
    expect_refused(HEAD "<Документ><Ид>m</Ид><ХозОперация>Заказ товара"
                        "</ХозОперация><Сумма>1234567890123456789"
                        "</Сумма></Документ>" TAIL,
                   "is too large a number");
}

Test(cml, a_keyed_field_given_twice_keeps_the_first)
{
    bs_errbuf err = {{0}};
    /* fuzz_cml found a record with "prop.p" twice, which load refused */
    bs_err rv = import_str(
        HEAD "<Каталог><Товары><Товар><Ид>g</Ид><ЗначенияСвойств>"
             "<ЗначенияСвойства><Ид>p</Ид><Значение>1</Значение>"
             "</ЗначенияСвойства><ЗначенияСвойства><Ид>p</Ид><Значение>2"
             "</Значение></ЗначенияСвойства></ЗначенияСвойств></Товар>"
             "</Товары></Каталог><ПакетПредложений><Предложения>"
             "<Предложение><Ид>g</Ид><Цены><Цена><ИдТипаЦены>t</ИдТипаЦены>"
             "<ЦенаЗаЕдиницу>5</ЦенаЗаЕдиницу></Цена><Цена><ИдТипаЦены>t"
             "</ИдТипаЦены><ЦенаЗаЕдиницу>6</ЦенаЗаЕдиницу></Цена></Цены>"
             "</Предложение></Предложения></ПакетПредложений>" TAIL,
        0, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    expect_record("products", "g", "{\"id\":\"g\",\"prop.p\":\"1\"}");
    expect_record("offers", "g",
                  "{\"id\":\"g\",\"price.t\":5,\"product\":\"g\"}");
}
