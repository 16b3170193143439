"""Word lists for the generated belt: garments, colours and sizes; names of firms; synthetic receivers.

Receivers are synthetic: a common surname, one or two given-name characters, a mobile number with a real
prefix and random digits, and a street address built from common road and estate names. None of it describes
a real person. No entry contains a quote or a backslash, so receivers can be written as JSON without escaping
(checked in :func:`check_json_safe`).
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --- what the belt makes ----------------------------------------------------------------------------------

# Process families: code, name, share of styles, minutes per unit (low, high).
PROCESS_FAMILIES: tuple[tuple[str, str, float, float, float], ...] = (
    ("cut_sew", "裁剪缝制", 0.46, 8.0, 40.0),
    ("knitting", "针织", 0.22, 12.0, 40.0),
    ("printing", "印花", 0.12, 5.0, 15.0),
    ("embroidery", "绣花", 0.06, 10.0, 30.0),
    ("washing", "水洗", 0.05, 6.0, 18.0),
    ("finishing", "整烫包装", 0.09, 5.0, 12.0),
)

# Garments per process family: name, weight of size M in grams, size set.
GARMENTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "cut_sew": (
        ("羽绒服", 850, "adult"), ("连衣裙", 320, "adult"), ("衬衫", 230, "adult"),
        ("西装外套", 650, "adult"), ("风衣", 700, "adult"), ("休闲裤", 420, "adult"),
        ("棉服", 780, "adult"), ("儿童外套", 380, "kids"), ("半身裙", 260, "adult"),
        ("夹克", 600, "adult"),
    ),
    "knitting": (
        ("针织开衫", 380, "adult"), ("羊毛衫", 420, "adult"), ("打底衫", 200, "adult"),
        ("毛衣", 480, "adult"), ("针织背心", 220, "adult"), ("儿童毛衣", 260, "kids"),
    ),
    "printing": (
        ("印花T恤", 200, "adult"), ("卫衣", 520, "adult"), ("儿童T恤", 140, "kids"),
        ("印花短袖", 190, "adult"),
    ),
    "embroidery": (("刺绣衬衫", 250, "adult"), ("绣花卫衣", 540, "adult"), ("刺绣外套", 640, "adult")),
    "washing": (("牛仔裤", 620, "adult"), ("牛仔外套", 780, "adult"), ("儿童牛仔裤", 330, "kids")),
    "finishing": (("家居服套装", 450, "adult"), ("睡衣", 380, "adult"), ("保暖内衣", 300, "adult")),
}  # fmt: skip

STYLE_ADJECTIVES = _words(
    "韩版 宽松 修身 复古 简约 百搭 高腰 加绒 法式 新款 港风 通勤 小香风 oversize 学院风 国潮"
)

COLOURS: tuple[tuple[str, str], ...] = (
    ("BK", "黑色"), ("WH", "白色"), ("GY", "灰色"), ("AP", "杏色"), ("NV", "藏青"), ("KH", "卡其"),
    ("WR", "酒红"), ("BL", "雾蓝"), ("GN", "墨绿"), ("PK", "粉色"), ("CM", "米白"), ("BR", "咖啡"),
)  # fmt: skip

# Size sets with relative demand and a weight factor against size M.
SIZES: dict[str, tuple[tuple[str, float, float], ...]] = {
    "adult": (("S", 0.14, 0.90), ("M", 0.30, 1.00), ("L", 0.29, 1.08), ("XL", 0.18, 1.16),
              ("XXL", 0.09, 1.25)),
    "kids": (("90", 0.10, 0.55), ("100", 0.17, 0.65), ("110", 0.21, 0.75), ("120", 0.21, 0.85),
             ("130", 0.17, 0.95), ("140", 0.14, 1.05)),
    "free": (("F", 1.0, 1.0),),
}  # fmt: skip

# --- firms -----------------------------------------------------------------------------------------------

FIRM_WORDS = _words(
    "锦绣 雅丽 盛华 恒泰 美琪 衣尚 波司 千禧 金梭 银河 虞美 海月 天虹 丝韵 "
    "博雅 兴隆 佳人 红豆 梦之 凯丰 欣悦 华艺 蓝鲸 晨曦 东升 秀禾 星辰 琴湖 "
    "瑞祥 宏达"
)

WORKSHOP_KINDS: dict[str, str] = {
    "cut_sew": "制衣厂", "knitting": "针织厂", "printing": "印花厂", "embroidery": "绣花厂",
    "washing": "水洗厂", "finishing": "整烫加工厂",
}  # fmt: skip

COURIERS: tuple[tuple[str, str], ...] = (
    ("ZTO", "中通快递"), ("YTO", "圆通速递"), ("YUNDA", "韵达快递"), ("STO", "申通快递"),
    ("JT", "极兔速递"), ("SF", "顺丰速运"), ("JD", "京东物流"), ("EMS", "中国邮政EMS"),
)  # fmt: skip

# --- synthetic receivers -----------------------------------------------------------------------------------

SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)

GIVEN_CHARS = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚英华玉萍红梅鑫波斌宇浩凯健俊帆帅旭宁琳雪"
    "婷欣悦晨阳佳子涵诗思雨嘉怡梓睿博文彤瑶琪晶颖倩慧毅然轩泽昊宏建国志海春秀"
)

MOBILE_PREFIXES = _words(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 "
    "173 175 176 177 178 180 181 182 183 184 185 186 187 188 189 191 198 199"
)

ROADS = _words(
    "人民路 解放路 中山路 建设路 和平路 新华路 胜利路 文化路 青年路 朝阳路 "
    "长江路 黄河路 南京路 北京路 东风路 工业路 学府路 幸福路 友谊路 光明路 "
    "滨江路 世纪大道 府前街 环城路 迎宾大道 花园路 劳动路 红旗路 育才路 振兴路 "
    "团结路 民主路 五一路 金桥路 湖滨路 站前路 商业街 体育路 科技路 新城大道"
)

# Most addresses name no estate: the empty entries weight that.
ESTATES = (
    "",
    "",
    "",
    *_words(
        "阳光花园 锦绣家园 翠苑小区 金色港湾 碧桂园 万科城 紫荆苑 幸福里 绿地新城 "
        "书香门第 恒大名都 和谐家园 滨河湾 东方明珠苑 御景园 香樟园 盛世华庭"
    ),
)


def check_json_safe() -> None:
    """Receivers are assembled as JSON without escaping: fail loudly if a word would need it."""
    for words in (SURNAMES, GIVEN_CHARS, ROADS, ESTATES, MOBILE_PREFIXES):
        for w in words:
            if '"' in w or "\\" in w or any(ord(c) < 0x20 for c in w):
                raise ValueError(f"receiver word {w!r} needs JSON escaping")
