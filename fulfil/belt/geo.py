"""Geography of the generated belt: China's 31 mainland provinces (where parcels go) and Changshu's towns
(where the belt's merchants, workshops, warehouses and courier points are).

Province codes are the two-digit GB/T 2260 codes; populations are the 2020 (seventh) national census;
coordinates are the provincial capital's, rounded to 0.01°. Town coordinates are approximate town centres,
good enough to cluster sites plausibly and to compute distances within the belt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The belt's centre: Changshu old town (虞山街道).
BELT_LON = 120.75
BELT_LAT = 31.65
# Cross-border parcels leave through a forwarder's consolidation warehouse (集运仓) in the belt itself:
# their domestic leg is priced to the belt's own province, and the forwarder carries them abroad.
EXPORT_HANDOVER_PROVINCE = "32"
# Belt local time is China Standard Time; the database keeps naive UTC.
UTC_OFFSET_HOURS = 8


@dataclass(frozen=True)
class Province:
    code: str  # GB/T 2260, two digits
    name: str
    population: int  # 2020 census
    capital: str
    lon: float
    lat: float
    # Receiving cities (or districts, for the four municipalities) with relative weights.
    cities: tuple[tuple[str, float], ...]

    @property
    def km_from_belt(self) -> float:
        return haversine_km(BELT_LON, BELT_LAT, self.lon, self.lat)


PROVINCES: tuple[Province, ...] = (
    Province("11", "北京市", 21_893_095, "北京", 116.40, 39.90,
             (("朝阳区", 3.5), ("海淀区", 3.1), ("丰台区", 2.0), ("昌平区", 2.3), ("大兴区", 2.0),
              ("通州区", 1.8))),
    Province("12", "天津市", 13_866_009, "天津", 117.20, 39.13,
             (("滨海新区", 2.1), ("南开区", 0.9), ("河西区", 0.8), ("西青区", 1.2), ("武清区", 1.2))),
    Province("13", "河北省", 74_610_235, "石家庄", 114.51, 38.04,
             (("石家庄市", 11.2), ("保定市", 9.2), ("邯郸市", 9.4), ("唐山市", 7.7), ("沧州市", 7.3),
              ("廊坊市", 5.5), ("邢台市", 7.1))),
    Province("14", "山西省", 34_915_616, "太原", 112.55, 37.87,
             (("太原市", 5.3), ("运城市", 4.8), ("临汾市", 4.0), ("大同市", 3.1), ("晋中市", 3.4))),
    Province("15", "内蒙古自治区", 24_049_155, "呼和浩特", 111.75, 40.84,
             (("呼和浩特市", 3.4), ("包头市", 2.7), ("赤峰市", 4.0), ("鄂尔多斯市", 2.2), ("通辽市", 2.9))),
    Province("21", "辽宁省", 42_591_407, "沈阳", 123.43, 41.80,
             (("沈阳市", 9.1), ("大连市", 7.5), ("鞍山市", 3.3), ("锦州市", 2.7), ("营口市", 2.3))),
    Province("22", "吉林省", 24_073_453, "长春", 125.32, 43.82,
             (("长春市", 9.1), ("吉林市", 3.6), ("四平市", 1.8), ("延边朝鲜族自治州", 1.9), ("松原市", 2.3))),
    Province("23", "黑龙江省", 31_850_088, "哈尔滨", 126.53, 45.80,
             (("哈尔滨市", 10.0), ("齐齐哈尔市", 4.1), ("大庆市", 2.8), ("绥化市", 3.8), ("牡丹江市", 2.3))),
    Province("31", "上海市", 24_870_895, "上海", 121.47, 31.23,
             (("浦东新区", 5.7), ("闵行区", 2.7), ("宝山区", 2.2), ("松江区", 1.9), ("嘉定区", 1.8),
              ("徐汇区", 1.1))),
    Province("32", "江苏省", 84_748_016, "南京", 118.80, 32.06,
             (("苏州市", 12.7), ("南京市", 9.3), ("徐州市", 9.1), ("无锡市", 7.5), ("南通市", 7.7),
              ("常州市", 5.3), ("盐城市", 6.7), ("扬州市", 4.6))),
    Province("33", "浙江省", 64_567_588, "杭州", 120.16, 30.27,
             (("杭州市", 11.9), ("宁波市", 9.4), ("温州市", 9.6), ("金华市", 7.1), ("嘉兴市", 5.4),
              ("台州市", 6.6), ("绍兴市", 5.3))),
    Province("34", "安徽省", 61_027_171, "合肥", 117.23, 31.82,
             (("合肥市", 9.4), ("阜阳市", 8.2), ("宿州市", 5.3), ("亳州市", 5.0), ("安庆市", 4.2),
              ("芜湖市", 3.6))),
    Province("35", "福建省", 41_540_086, "福州", 119.30, 26.08,
             (("泉州市", 8.8), ("福州市", 8.3), ("厦门市", 5.2), ("漳州市", 5.1), ("莆田市", 3.2))),
    Province("36", "江西省", 45_188_635, "南昌", 115.86, 28.68,
             (("南昌市", 6.3), ("赣州市", 9.0), ("上饶市", 6.5), ("九江市", 4.6), ("宜春市", 5.0))),
    Province("37", "山东省", 101_527_453, "济南", 117.00, 36.65,
             (("临沂市", 11.0), ("青岛市", 10.1), ("济南市", 9.2), ("潍坊市", 9.4), ("菏泽市", 8.8),
              ("济宁市", 8.4), ("烟台市", 7.1))),
    Province("41", "河南省", 99_365_519, "郑州", 113.63, 34.75,
             (("郑州市", 12.6), ("南阳市", 9.7), ("周口市", 9.0), ("商丘市", 7.8), ("洛阳市", 7.1),
              ("驻马店市", 7.0), ("新乡市", 6.3))),
    Province("42", "湖北省", 57_752_557, "武汉", 114.31, 30.59,
             (("武汉市", 12.3), ("襄阳市", 5.3), ("荆州市", 5.2), ("黄冈市", 5.9), ("宜昌市", 4.0),
              ("孝感市", 4.3))),
    Province("43", "湖南省", 66_444_864, "长沙", 112.94, 28.23,
             (("长沙市", 10.0), ("邵阳市", 6.6), ("衡阳市", 6.6), ("常德市", 5.3), ("岳阳市", 5.1),
              ("永州市", 5.3))),
    Province("44", "广东省", 126_012_510, "广州", 113.26, 23.13,
             (("广州市", 18.7), ("深圳市", 17.6), ("东莞市", 10.5), ("佛山市", 9.5), ("汕头市", 5.5),
              ("惠州市", 6.0), ("湛江市", 7.0), ("揭阳市", 5.6))),
    Province("45", "广西壮族自治区", 50_126_804, "南宁", 108.37, 22.82,
             (("南宁市", 8.7), ("玉林市", 5.8), ("桂林市", 4.9), ("柳州市", 4.2), ("贵港市", 4.3))),
    Province("46", "海南省", 10_081_232, "海口", 110.20, 20.04,
             (("海口市", 2.9), ("三亚市", 1.0), ("儋州市", 1.0), ("琼海市", 0.5))),
    Province("50", "重庆市", 32_054_159, "重庆", 106.55, 29.56,
             (("渝北区", 2.2), ("九龙坡区", 1.5), ("江北区", 0.9), ("沙坪坝区", 1.5), ("万州区", 1.6),
              ("涪陵区", 1.1))),
    Province("51", "四川省", 83_674_866, "成都", 104.07, 30.57,
             (("成都市", 20.9), ("南充市", 5.6), ("达州市", 5.4), ("绵阳市", 4.9), ("宜宾市", 4.6),
              ("泸州市", 4.3))),
    Province("52", "贵州省", 38_562_148, "贵阳", 106.63, 26.65,
             (("贵阳市", 6.0), ("遵义市", 6.6), ("毕节市", 6.9), ("黔南布依族苗族自治州", 3.5),
              ("六盘水市", 3.0))),
    Province("53", "云南省", 47_209_277, "昆明", 102.83, 24.88,
             (("昆明市", 8.5), ("曲靖市", 5.8), ("昭通市", 5.1), ("红河哈尼族彝族自治州", 4.5),
              ("大理白族自治州", 3.3))),
    Province("54", "西藏自治区", 3_648_100, "拉萨", 91.11, 29.65,
             (("拉萨市", 0.9), ("日喀则市", 0.8), ("昌都市", 0.8))),
    Province("61", "陕西省", 39_528_999, "西安", 108.94, 34.34,
             (("西安市", 13.0), ("咸阳市", 4.2), ("宝鸡市", 3.3), ("渭南市", 4.7), ("榆林市", 3.6))),
    Province("62", "甘肃省", 25_019_831, "兰州", 103.83, 36.06,
             (("兰州市", 4.4), ("天水市", 3.0), ("定西市", 2.5), ("庆阳市", 2.2), ("陇南市", 2.4))),
    Province("63", "青海省", 5_923_957, "西宁", 101.78, 36.62,
             (("西宁市", 2.5), ("海东市", 1.4), ("海西蒙古族藏族自治州", 0.5))),
    Province("64", "宁夏回族自治区", 7_202_654, "银川", 106.23, 38.49,
             (("银川市", 2.9), ("吴忠市", 1.4), ("固原市", 1.1), ("石嘴山市", 0.8))),
    Province("65", "新疆维吾尔自治区", 25_852_345, "乌鲁木齐", 87.62, 43.83,
             (("乌鲁木齐市", 4.1), ("喀什地区", 4.5), ("伊犁哈萨克自治州", 2.8), ("阿克苏地区", 2.7),
              ("昌吉回族自治州", 1.6))),
)  # fmt: skip

PROVINCE_BY_CODE = {p.code: p for p in PROVINCES}

# Provinces the tongda couriers surcharge beyond distance (remote, or across the Qiongzhou Strait).
REMOTE_SURCHARGE_FEN = {"54": 300, "65": 300, "63": 100, "46": 100}


@dataclass(frozen=True)
class Town:
    name: str
    lon: float
    lat: float
    # Relative weights of what sits in the town: workshops, merchants (offices, showrooms), warehouses.
    workshops: float
    merchants: float
    warehouses: float


# Changshu's towns and sub-districts. The garment city (招商城) and the old-town districts hold the merchants;
# workshops spread over the garment towns; shared warehouses sit near the logistics parks.
TOWNS: tuple[Town, ...] = (
    Town("招商城", 120.78, 31.67, 0.8, 5.0, 2.0),
    Town("虞山", 120.74, 31.65, 1.0, 2.0, 1.0),
    Town("琴川", 120.76, 31.66, 0.6, 2.0, 0.5),
    Town("常福", 120.79, 31.63, 1.0, 1.0, 1.5),
    Town("莫城", 120.72, 31.70, 1.4, 0.8, 1.5),
    Town("东南", 120.83, 31.61, 0.8, 0.4, 2.0),
    Town("古里", 120.86, 31.64, 1.8, 0.6, 0.7),
    Town("沙家浜", 120.82, 31.56, 1.3, 0.3, 0.6),
    Town("支塘", 120.93, 31.59, 1.5, 0.3, 0.5),
    Town("董浜", 120.89, 31.70, 1.3, 0.2, 0.4),
    Town("辛庄", 120.64, 31.55, 1.5, 0.3, 0.6),
    Town("尚湖", 120.65, 31.63, 1.0, 0.2, 0.4),
    Town("梅李", 120.88, 31.76, 1.4, 0.3, 0.6),
    Town("海虞", 120.82, 31.77, 1.6, 0.4, 0.8),
    Town("碧溪", 120.92, 31.74, 1.0, 0.2, 0.5),
)


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))
