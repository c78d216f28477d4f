"""app.py's Runner end to end in plain Python: python3 -m unittest

The test host stands in for the host's interfaces (testing_host.py): a
scripted model answer, an upstream artifact, captured calls and logs.
"""

import json
import unittest

from testing_host import Err, TestHost


class RunTest(unittest.TestCase):
    def setUp(self):
        self.host = TestHost().install()
        import app

        self.app = app

    def test_run_asks_the_model_about_the_task_and_its_inputs(self):
        self.host.answer("small", "A short summary.")
        stage_input = self.host.stage_input(
            "Summarise the notes",
            upstream=[("greet", [("greeting.txt", "text/plain", b"Hello there"), ("image.png", "image/png", b"\x89P")])],
        )
        output = self.app.Runner().run(stage_input)
        self.assertEqual(len(self.host.calls), 1)
        call = self.host.calls[0]
        self.assertEqual(call.alias, "small")
        self.assertIn("Summarise the notes", call.prompt())
        self.assertIn("--- greet/greeting.txt ---\nHello there", call.prompt())
        answer = next(a for a in output.artifacts if a.name.endswith(".md"))
        self.assertEqual(answer.bytes, b"A short summary.")
        account = json.loads(next(a for a in output.artifacts if a.name.endswith(".json")).bytes)
        self.assertEqual(account["inputs"], [{"stage": "greet", "name": "greeting.txt", "chars": 11}])

    def test_an_unavailable_model_is_a_retryable_failure(self):
        self.host.fail("small", "unavailable", "down for a minute")
        with self.assertRaises(Err) as raised:
            self.app.Runner().run(self.host.stage_input("t"))
        self.assertEqual(type(raised.exception.value).__name__, "StageError_Retryable")
        self.assertIn("down for a minute", raised.exception.value.value)


if __name__ == "__main__":
    unittest.main()
