"""Published Kodak figures to print beside ours (docs: ../shared/docs/reference.md 1.5 and 6).

These are other people's measurements, quoted with their source; nothing here is ours.
"""

#: Cheng et al. 2022 (DenoiseCompression, reports/*.json, "Inference (ans)"), Kodak, MSE models q1..q6.
CHENG2022 = {
    1: {"bpp": [0.0987, 0.1518, 0.2244, 0.3394, 0.4795, 0.6442], "psnr": [28.04, 29.35, 30.63, 32.30, 33.68, 34.77]},
    2: {"bpp": [0.0987, 0.1515, 0.2235, 0.3338, 0.4664, 0.6214], "psnr": [27.99, 29.25, 30.44, 31.89, 32.98, 33.75]},
    3: {"bpp": [0.0992, 0.1525, 0.2252, 0.3283, 0.4477, 0.5935], "psnr": [27.83, 28.94, 29.90, 30.92, 31.57, 31.98]},
    4: {"bpp": [0.1094, 0.1834, 0.2839, 0.4795, 0.6069, 0.8188], "psnr": [26.77, 27.62, 27.82, 27.91, 28.37, 28.40]},
}
#: Xie et al. 2024 (the paper jcd implements; JICDCS "Demo Results"), Kodak, q1 and q6 only.
XIE2024 = {
    1: {"q": [1, 6], "bpp": [0.0988, 0.6435], "psnr": [28.05, 34.78]},
    2: {"q": [1, 6], "bpp": [0.0986, 0.6211], "psnr": [28.00, 33.77]},
    3: {"q": [1, 6], "bpp": [0.0994, 0.5910], "psnr": [27.84, 31.99]},
    4: {"q": [1, 6], "bpp": [0.1111, 0.7812], "psnr": [27.10, 28.59]},
}
SOURCE = "../shared/docs/reference.md sections 1.5 (Cheng et al. 2022) and 6 (Xie et al. 2024)"
