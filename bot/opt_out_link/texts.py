"""What the opt-out page says, in each language the bot understands.

`hi` is Hinglish (Hindi in Latin script), as our customers write it. A text has `{business}` (the
name customers know the business by) and, where said, `{date}` or `{days}`. The button labels of
the marketing template are here too (WhatsApp allows 25 characters).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PageTexts:
    button_label: str  # the template's URL button
    quick_reply_label: str  # the template's "Stop promotions" quick reply
    question: str
    explain: str
    confirm: str
    keep: str
    done_title: str
    done: str
    kept_title: str
    kept: str
    already_title: str
    already: str
    invalid_title: str
    invalid: str
    expired_title: str
    expired: str
    retry_title: str  # a confirmation we cannot accept (no or a wrong CSRF value, another site)
    retry: str


TEXTS: dict[str, PageTexts] = {
    "en": PageTexts(
        button_label="Unsubscribe",
        quick_reply_label="Stop promotions",
        question="Stop marketing messages from {business}?",
        explain="You will no longer receive offers and promotions from {business} on WhatsApp. Messages about your orders and answers to your questions are not affected.",
        confirm="Stop marketing messages",
        keep="Keep receiving them",
        done_title="You are unsubscribed",
        done="{business} will not send you marketing messages any more.",
        kept_title="Nothing has changed",
        kept="You will keep receiving offers from {business}. You can stop them at any time by writing STOP in the chat.",
        already_title="You are already unsubscribed",
        already="{business} stopped sending you marketing messages on {date}. There is nothing more to do.",
        invalid_title="This link does not work",
        invalid="The link is incomplete or has been changed. To stop marketing messages, write STOP in your WhatsApp chat with {business}.",
        expired_title="This link has expired",
        expired="Opt-out links work for {days} days. To stop marketing messages, write STOP in your WhatsApp chat with {business}.",
        retry_title="Please try again",
        retry="Open the link in your WhatsApp chat with {business} again and choose one of the two buttons.",
    ),
    "es": PageTexts(
        button_label="Darse de baja",
        quick_reply_label="Parar promociones",
        question="¿Dejar de recibir mensajes de marketing de {business}?",
        explain="Ya no recibirás ofertas ni promociones de {business} por WhatsApp. Los mensajes sobre tus pedidos y las respuestas a tus preguntas no cambian.",
        confirm="Dejar de recibirlos",
        keep="Seguir recibiéndolos",
        done_title="Te has dado de baja",
        done="{business} ya no te enviará mensajes de marketing.",
        kept_title="No ha cambiado nada",
        kept="Seguirás recibiendo ofertas de {business}. Puedes detenerlas cuando quieras escribiendo STOP en el chat.",
        already_title="Ya estabas dado de baja",
        already="{business} dejó de enviarte mensajes de marketing el {date}. No tienes que hacer nada más.",
        invalid_title="Este enlace no funciona",
        invalid="El enlace está incompleto o ha sido modificado. Para dejar de recibir mensajes de marketing, escribe STOP en tu chat de WhatsApp con {business}.",
        expired_title="Este enlace ha caducado",
        expired="Los enlaces de baja funcionan durante {days} días. Para dejar de recibir mensajes de marketing, escribe STOP en tu chat de WhatsApp con {business}.",
        retry_title="Inténtalo de nuevo",
        retry="Abre otra vez el enlace en tu chat de WhatsApp con {business} y elige uno de los dos botones.",
    ),
    "pt": PageTexts(
        button_label="Cancelar inscrição",
        quick_reply_label="Parar promoções",
        question="Parar de receber mensagens de marketing de {business}?",
        explain="Você não receberá mais ofertas nem promoções de {business} no WhatsApp. Mensagens sobre seus pedidos e respostas às suas perguntas continuam.",
        confirm="Parar de receber",
        keep="Continuar recebendo",
        done_title="Inscrição cancelada",
        done="{business} não vai mais enviar mensagens de marketing para você.",
        kept_title="Nada mudou",
        kept="Você continuará recebendo ofertas de {business}. Pode pará-las quando quiser escrevendo STOP no chat.",
        already_title="Você já tinha cancelado",
        already="{business} parou de enviar mensagens de marketing para você em {date}. Não precisa fazer mais nada.",
        invalid_title="Este link não funciona",
        invalid="O link está incompleto ou foi alterado. Para parar de receber mensagens de marketing, escreva STOP no seu chat do WhatsApp com {business}.",
        expired_title="Este link expirou",
        expired="Os links de cancelamento valem por {days} dias. Para parar de receber mensagens de marketing, escreva STOP no seu chat do WhatsApp com {business}.",
        retry_title="Tente novamente",
        retry="Abra de novo o link no seu chat do WhatsApp com {business} e escolha um dos dois botões.",
    ),
    "hi": PageTexts(
        button_label="Unsubscribe karein",
        quick_reply_label="Promotions band karo",
        question="{business} ke marketing messages band karein?",
        explain="Aapko WhatsApp par {business} ke offers aur promotions nahi milenge. Aapke orders ke messages aur aapke sawalon ke jawab pehle jaise milte rahenge.",
        confirm="Messages band karein",
        keep="Milte rehne dein",
        done_title="Aap unsubscribe ho gaye",
        done="{business} ab aapko marketing messages nahi bhejega.",
        kept_title="Kuch nahi badla",
        kept="Aapko {business} ke offers milte rahenge. Kabhi bhi chat mein STOP likhkar inhe band kar sakte hain.",
        already_title="Aap pehle se unsubscribe hain",
        already="{business} ne {date} ko aapko marketing messages bhejna band kar diya tha. Aapko aur kuch nahi karna hai.",
        invalid_title="Yeh link kaam nahi kar raha",
        invalid="Link adhoora hai ya badla gaya hai. Marketing messages band karne ke liye {business} ke WhatsApp chat mein STOP likhein.",
        expired_title="Is link ki muddat khatam ho gayi",
        expired="Unsubscribe links {days} din tak chalte hain. Marketing messages band karne ke liye {business} ke WhatsApp chat mein STOP likhein.",
        retry_title="Dobara koshish karein",
        retry="{business} ke WhatsApp chat mein link phir se kholein aur dono buttons mein se ek chunein.",
    ),
    "fr": PageTexts(
        button_label="Se désabonner",
        quick_reply_label="Stop aux promotions",
        question="Ne plus recevoir les messages marketing de {business} ?",
        explain="Vous ne recevrez plus d'offres ni de promotions de {business} sur WhatsApp. Les messages sur vos commandes et les réponses à vos questions ne changent pas.",
        confirm="Ne plus les recevoir",
        keep="Continuer à les recevoir",
        done_title="Vous êtes désabonné",
        done="{business} ne vous enverra plus de messages marketing.",
        kept_title="Rien n'a changé",
        kept="Vous continuerez à recevoir les offres de {business}. Vous pouvez les arrêter à tout moment en écrivant STOP dans la conversation.",
        already_title="Vous êtes déjà désabonné",
        already="{business} a cessé de vous envoyer des messages marketing le {date}. Vous n'avez rien d'autre à faire.",
        invalid_title="Ce lien ne fonctionne pas",
        invalid="Le lien est incomplet ou a été modifié. Pour ne plus recevoir de messages marketing, écrivez STOP dans votre conversation WhatsApp avec {business}.",
        expired_title="Ce lien a expiré",
        expired="Les liens de désabonnement sont valables {days} jours. Pour ne plus recevoir de messages marketing, écrivez STOP dans votre conversation WhatsApp avec {business}.",
        retry_title="Veuillez réessayer",
        retry="Rouvrez le lien dans votre conversation WhatsApp avec {business} et choisissez l'un des deux boutons.",
    ),
    "de": PageTexts(
        button_label="Abmelden",
        quick_reply_label="Keine Werbung mehr",
        question="Keine Werbenachrichten mehr von {business}?",
        explain="Sie erhalten dann keine Angebote und Aktionen von {business} mehr über WhatsApp. Nachrichten zu Ihren Bestellungen und Antworten auf Ihre Fragen bleiben.",
        confirm="Keine Werbung mehr",
        keep="Weiter erhalten",
        done_title="Sie sind abgemeldet",
        done="{business} schickt Ihnen keine Werbenachrichten mehr.",
        kept_title="Nichts hat sich geändert",
        kept="Sie erhalten weiter Angebote von {business}. Sie können sie jederzeit abbestellen, indem Sie STOP in den Chat schreiben.",
        already_title="Sie sind bereits abgemeldet",
        already="{business} schickt Ihnen seit dem {date} keine Werbenachrichten mehr. Sie müssen nichts weiter tun.",
        invalid_title="Dieser Link funktioniert nicht",
        invalid="Der Link ist unvollständig oder wurde verändert. Um keine Werbenachrichten mehr zu erhalten, schreiben Sie STOP in Ihren WhatsApp-Chat mit {business}.",
        expired_title="Dieser Link ist abgelaufen",
        expired="Abmeldelinks gelten {days} Tage. Um keine Werbenachrichten mehr zu erhalten, schreiben Sie STOP in Ihren WhatsApp-Chat mit {business}.",
        retry_title="Bitte versuchen Sie es erneut",
        retry="Öffnen Sie den Link in Ihrem WhatsApp-Chat mit {business} noch einmal und wählen Sie eine der beiden Schaltflächen.",
    ),
    "id": PageTexts(
        button_label="Berhenti langganan",
        quick_reply_label="Stop promosi",
        question="Berhenti menerima pesan promosi dari {business}?",
        explain="Anda tidak akan menerima penawaran dan promosi dari {business} di WhatsApp lagi. Pesan tentang pesanan Anda dan jawaban atas pertanyaan Anda tetap dikirim.",
        confirm="Berhenti menerima",
        keep="Tetap menerima",
        done_title="Langganan Anda dihentikan",
        done="{business} tidak akan mengirimkan pesan promosi kepada Anda lagi.",
        kept_title="Tidak ada yang berubah",
        kept="Anda tetap akan menerima penawaran dari {business}. Anda bisa menghentikannya kapan saja dengan menulis STOP di chat.",
        already_title="Anda sudah berhenti berlangganan",
        already="{business} berhenti mengirimkan pesan promosi kepada Anda pada {date}. Anda tidak perlu melakukan apa-apa lagi.",
        invalid_title="Tautan ini tidak berfungsi",
        invalid="Tautan tidak lengkap atau telah diubah. Untuk berhenti menerima pesan promosi, tulis STOP di chat WhatsApp Anda dengan {business}.",
        expired_title="Tautan ini sudah kedaluwarsa",
        expired="Tautan berhenti langganan berlaku selama {days} hari. Untuk berhenti menerima pesan promosi, tulis STOP di chat WhatsApp Anda dengan {business}.",
        retry_title="Silakan coba lagi",
        retry="Buka lagi tautan di chat WhatsApp Anda dengan {business} dan pilih salah satu dari dua tombol.",
    ),
}

DEFAULT_LANGUAGE = "en"


def language_of(code: str | None) -> str:
    """'pt_BR', 'es-419', 'DE' -> our language; unknown or missing -> the default."""
    base = (code or "").replace("-", "_").split("_")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def texts_for(code: str | None) -> PageTexts:
    return TEXTS[language_of(code)]
