"""Marker words: very common words of one of our languages that are not words of another.

Short messages give a statistical detector little to go on ("sim", "ja", "sí, por favor" are a
coin toss between close languages for lingua), but a customer's "não", "tidak", "bitte" or "quiero"
settles it. A message whose words include more markers of one language than of any other is that
language. Written from knowledge of the languages (a word shared by two of them is left out:
"mais" is French and Portuguese, "ya" Spanish and Indonesian) and checked on the DEV texts
(bench/language_eval.py --dev), never on the held-out set. Lower case, accents as written; words
are split at apostrophes ("c'est" -> "c", "est").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

MARKERS: dict[str, frozenset[str]] = {
    language: frozenset(words.split())
    for language, words in {
        "en": """yes yeah yep please pls thanks thank you your don dont want the and is are not from
            messages send sending keep unsubscribe unsub hello bye what where who why how this that
            it i im can sure thx remove list offers deals order package help good morning great love
            like anymore never again enough wrong number off my of with any these those them
            they we our texting text emails email mailing maybe later there""",
        "es": """sí quiero gracias hola buenos buenas días tardes mensajes recibir dejen dejar más
            publicidad su sus mi yo eres estoy muchas muchos adiós hasta luego bórrenme borren
            eliminen sigan paren qué quién dónde cómo porque el los las del un y con sé vale dale
            porfa ahora también promociones suscripción baja darme usted ustedes manden envíen
            """,
        "pt": """não nao sim quero obrigado obrigada oi olá tchau você vocês vcs voce meu minha meus
            mensagens receber mandem parem isso chega tudo bem muito agora cadê encomenda tira
            tirem dessa desse pra pro pode tá também então gente ninguém promoções inscrição
            descadastrar sair um uma com são estou já né mim contato aplicativo carrinho lembrete""",
        "fr": """oui non merci bonjour bonsoir salut je vous votre vos nous ne pas plus les des mon
            ma mes est ça suis veux voudrais arrêtez arrête arrêt arrêter désabonner pub pubs svp
            stp il plaît commande colis où quoi qui avec pour sur au aux accord très rien jamais
            encore aussi trop marre j qu aime envoyez écrivez quand absolument""",
        "de": """ja nein danke bitte hallo ich mich mir mein meine meinen sie nicht keine kein mehr
            nachrichten werbung abmelden austragen bestellung paket wo wann warum ist das der und
            mit von bis guten tag morgen tschüss gerne genau schon auch noch bin bist euch eure
            euer schicken schickt hört auf aufhören stoppen stopp habe hab gut vielen dank""",
        "id": """iya tidak gak ga gk nggak enggak tdk saya aku kamu anda kak mau jangan jgn lagi lg
            kirim pesan terima kasih makasih tolong sudah udah dah aja deh dong sih ini itu apa di
            mana dari dengan untuk yang dan berhenti langganan hapus nomor belum sampai halo
            selamat pagi siang malam bisa boleh oke capek terus gimana gabung gatau""",
    }.items()
}


def marked_language(words: Sequence[str]) -> str | None:
    """Pure: the language with more marker words among these than any other, if there is one."""
    votes = Counter(language for word in words for language, markers in MARKERS.items() if word in markers)
    ranked = votes.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]
