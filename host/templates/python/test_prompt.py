"""Unit tests of the plugin's logic: python3 -m unittest"""

import unittest

from prompt import build_prompt, readable


class PromptTest(unittest.TestCase):
    def test_the_prompt_holds_the_task_and_each_readable_input(self):
        upstream = [
            ("greet", [("greeting.txt", "text/plain", b"Hello there"), ("image.png", "image/png", b"\x89P")]),
        ]
        inputs = readable(upstream)
        self.assertEqual(inputs, [("greet", "greeting.txt", "Hello there")])
        prompt = build_prompt("the task", inputs)
        self.assertTrue(prompt.startswith("Task:\nthe task\n"))
        self.assertIn("--- greet/greeting.txt ---\nHello there", prompt)

    def test_a_head_cut_inside_a_character_still_reads(self):
        cut = "héllo wörld".encode()[:-4]
        self.assertEqual(readable([("s", [("a.txt", "text/plain", cut)])]), [("s", "a.txt", "héllo w")])


if __name__ == "__main__":
    unittest.main()
