# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Converters of the public IMDD-1M source datasets (paper Table 2); every
source converter lives here (``data_converters/`` holds the framework and
the generic, config-driven converters).

``data_converters.base.import_all_converters`` imports this package like any
converter module; importing it registers every converter below under its
SOURCE name (``python data_converters/convert.py SOURCE --root ...``):

=================  ====================================================
SOURCE             dataset
=================  ====================================================
mvtec_ad           MVTec AD (15 categories, pixel masks)
mvtec_ad2          MVTec AD 2 (8 categories, public test split)
magnetic_tile      Magnetic Tile (folder per class, masks beside images)
neu_det            NEU-DET (Pascal VOC boxes, class per XML object)
elpv               ELPV solar cells (labels.csv defect probabilities)
visa               VisA (12 objects, 78 id2class defect classes, split_csv)
btad               BTAD (3 products, pixel masks)
kolektorsdd        KolektorSDD (commutators, pixel masks)
kolektorsdd2       KolektorSDD2 (pixel masks, train/test)
dagm2007           DAGM 2007 (10 textures, ellipse masks; nested/Kaggle)
pcb                PKU PCB defects (Huang & Wei, VOC boxes)
deeppcb            DeepPCB (boxes x1,y1,x2,y2,type; _temp.jpg = normal)
wm811k             WM-811K wafer maps (LSWMD.pkl, rendered to PNG)
sdnet2018          SDNET2018 (concrete deck/wall/pavement, image labels)
tianchi_aluminum   Tianchi / Guangdong aluminium profile defects
tianchi_fabric     Tianchi / Guangdong fabric defects (anno_train.json)
gc10_det           GC10-DET steel surface defects (VOC boxes)
steel_pipe_weld    steel pipe weld defects (VOC or YOLO, generic reuse)
tianchi_baijiu     Tianchi bottled liquor defects (COCO, 背景 = normal)
ssgd               SSGD smartphone screen glass (COCO folds per part)
tig_al5083         TIG Al 5083 weld pool (train.json/test.json labels)
=================  ====================================================
"""
from . import elpv, magnetic_tile, neu_det  # noqa: F401  (moved here)
from . import (btad, dagm2007, deeppcb, gc10_det, kolektorsdd,  # noqa: F401
               kolektorsdd2, mvtec_ad, mvtec_ad2, pcb, sdnet2018,
               steel_pipe_weld, tianchi_aluminum, tianchi_fabric, visa,
               wm811k)

from . import ssgd, tianchi_baijiu, tig_al5083  # noqa: F401,E402
